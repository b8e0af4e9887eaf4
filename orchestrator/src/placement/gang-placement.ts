/**
 * Gang placement as pure functions (docs/architecture.md §4): queue order is priority (desc), then submit
 * time (asc); a generation starts only when every one of its ranks has a device.
 */

export interface PendingJob {
  id: string;
  priority: number;
  submittedAtMs: number;
  /** resources.workers */
  workers: number;
  /** resources.minWorkers; only used when `resuming` */
  minWorkers: number;
  /** true after a loss (RECOVERING / WAITING): may continue with fewer ranks, >= minWorkers */
  resuming: boolean;
  globalBatch: number;
}

export interface Device {
  agentId: string;
  deviceId: string;
  /** A device that belongs to one job (e.g. an agent the local launcher started for it). */
  ownerJobId?: string;
}

export interface Placement {
  jobId: string;
  devices: Device[];
}

/** Priority first (higher first), then earlier submission, then id for a stable order. */
export function queueOrder<T extends Pick<PendingJob, 'id' | 'priority' | 'submittedAtMs'>>(jobs: T[]): T[] {
  return [...jobs].sort((a, b) => b.priority - a.priority || a.submittedAtMs - b.submittedAtMs || (a.id < b.id ? -1 : 1));
}

/**
 * World size to use given `available` devices: `workers` for a fresh start; after a loss the
 * largest W in [minWorkers, workers] that fits and divides the global batch. null = must wait.
 */
export function worldSizeFor(job: PendingJob, available: number): number | null {
  if (!job.resuming) return available >= job.workers ? job.workers : null;
  for (let w = Math.min(job.workers, available); w >= Math.max(1, job.minWorkers); w--) {
    if (job.globalBatch % w === 0) return w;
  }
  return null;
}

/** Devices this job may use: its own first, then unowned ones; spread over agents in a stable order. */
export function eligibleDevices(jobId: string, free: Device[]): Device[] {
  const own = free.filter((d) => d.ownerJobId === jobId);
  const shared = free.filter((d) => d.ownerJobId === undefined);
  const key = (d: Device) => `${d.agentId}\u0000${d.deviceId}`;
  return [...own.sort((a, b) => (key(a) < key(b) ? -1 : 1)), ...shared.sort((a, b) => (key(a) < key(b) ? -1 : 1))];
}

/** Ranks a job needs at the least to start: all its workers, or minWorkers after a loss. */
export function ranksNeeded(job: PendingJob): number {
  return job.resuming ? Math.max(1, job.minWorkers) : job.workers;
}

/**
 * One placement round: walk the queue in order and give each job all its ranks or nothing.
 * No backfill on shared devices past a job that cannot start (so a big high-priority job is not
 * starved); devices owned by a job (its local agents) stay usable by that job. With `capacity` (the
 * devices that exist, busy or not, when no launcher brings more), a job needing more than that can
 * never start as things are, so it does not hold back the jobs behind it.
 */
export function placeGangs(queue: PendingJob[], free: Device[], opts: {capacity?: number} = {}): Placement[] {
  let pool = [...free];
  let sharedBlocked = false;
  const out: Placement[] = [];
  for (const job of queueOrder(queue)) {
    const usable = eligibleDevices(job.id, pool).filter((d) => !sharedBlocked || d.ownerJobId === job.id);
    const w = worldSizeFor(job, usable.length);
    if (w === null) {
      if (opts.capacity === undefined || ranksNeeded(job) <= opts.capacity) sharedBlocked = true;
      continue;
    }
    const devices = usable.slice(0, w);
    out.push({jobId: job.id, devices});
    const taken = new Set(devices);
    pool = pool.filter((d) => !taken.has(d));
  }
  return out;
}
