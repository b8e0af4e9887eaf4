/**
 * One placement round: gather jobs that need a group, the free devices, place gangs, start
 * generations, and let the launcher bring agents for the jobs that still lack devices.
 */
import type {Job} from '../domain/types';
import {localAgentId} from '../launchers/local';
import {placeGangs, queueOrder, ranksNeeded, type Device, type PendingJob} from '../placement/gang-placement';
import type {CoordinatorContext} from './context';
import {resourcesOf} from './spec-fields';
import {setState, startGeneration, type StartContext} from './lifecycle';

const NEEDS_GROUP: Job['state'][] = ['QUEUED', 'RECOVERING', 'WAITING'];

function pendingOf(job: Job): PendingJob {
  const r = resourcesOf(job.spec);
  return {
    id: job.id, priority: job.priority, submittedAtMs: job.submittedAtMs, workers: r.workers,
    minWorkers: r.minWorkers, globalBatch: r.globalBatch, resuming: job.state !== 'QUEUED',
  };
}

/** Devices of agents the local launcher started for a job belong to that job. */
function ownerOf(agentId: string, jobs: Job[]): string | undefined {
  if (!agentId.startsWith('local-')) return undefined;
  return jobs.find((j) => agentId.startsWith(localAgentId(j.id, 0).slice(0, -1)))?.id;
}

export function placementRound(ctx: StartContext & Pick<CoordinatorContext, 'grpcAddress'>): void {
  const pendingJobs = ctx.store.listJobs({states: NEEDS_GROUP}).filter((j) => !ctx.live.hasRun(j.id));
  if (pendingJobs.length === 0) return;
  const allJobs = ctx.store.listJobs({states: ['QUEUED', 'SCHEDULED', 'RUNNING', 'RECOVERING', 'WAITING']});
  const free: Device[] = ctx.agents.freeDevices()
    .filter((d) => !ctx.live.isDraining(d.agentId))
    .map((d) => {
      const owner = ownerOf(d.agentId, allJobs);
      return owner ? {agentId: d.agentId, deviceId: d.deviceId, ownerJobId: owner} : {agentId: d.agentId, deviceId: d.deviceId};
    });
  // Only the external launcher never brings agents: there, what is connected now is all there is.
  const capacity = ctx.launcher.name === 'external' ? ctx.agents.list()
    .filter((a) => a.connected && !ctx.live.isDraining(a.agentId)).reduce((n, a) => n + a.devices.length, 0) : undefined;
  const placements = placeGangs(pendingJobs.map(pendingOf), free, {capacity});
  const placed = new Set<string>();
  for (const p of placements) {
    const job = ctx.store.getJob(p.jobId)!;
    if (startGeneration(ctx, job, p.devices)) placed.add(job.id);
  }
  // Devices whose aborted trainers are still exiting come back in a moment: not a reason to WAIT.
  const soon = ctx.agents.freeDevices({includeSettling: true}).filter((d) => !ctx.live.isDraining(d.agentId)).length;
  for (const job of queueOrder(pendingJobs.filter((j) => !placed.has(j.id)))) {
    let fresh = ctx.store.getJob(job.id)!;
    const r = resourcesOf(fresh.spec);
    if (fresh.state === 'RECOVERING' && soon < r.minWorkers) {
      fresh = setState(ctx, fresh.id, 'WAITING', `fewer than minWorkers (${r.minWorkers}) devices free; waiting for agents`);
    }
    explainTooBig(ctx, fresh, capacity);
    const key = `${fresh.state}:${fresh.generation}`;
    if (NEEDS_GROUP.includes(fresh.state) && ctx.live.launchOnce(fresh.id, key)) {
      ctx.launcher.ensureAgents({jobId: fresh.id, workers: r.workers, spec: fresh.spec, coordinatorAddress: ctx.grpcAddress})
        .catch((err) => ctx.events.emit(fresh.id, 'error', 'launcher', `could not start agents: ${(err as Error).message}`));
    }
  }
}

/** Says in the job's message (byolctl status) why it waits when it needs more devices than exist. */
function explainTooBig(ctx: Pick<CoordinatorContext, 'store'>, job: Job, capacity: number | undefined): void {
  if (capacity === undefined || !NEEDS_GROUP.includes(job.state)) return;
  const need = ranksNeeded(pendingOf(job));
  const field = job.state === 'QUEUED' ? 'spec.resources.workers' : 'spec.resources.minWorkers';
  const why = `needs ${need} workers but only ${capacity} device(s) are connected; start more agents or lower ${field} ` +
    '(jobs that fit run meanwhile)';
  if (need > capacity && job.message !== why) ctx.store.updateJob(job.id, {message: why});
  else if (need <= capacity && job.message?.startsWith(`needs ${need} workers but only`)) ctx.store.updateJob(job.id, {message: null});
}
