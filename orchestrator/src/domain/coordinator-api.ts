import type {CheckpointRecord, Generation, Job, JobEvent, JobHealth, MetricPoint, RankSeries, WorkerInfo} from './types';

/** A job as REST, `byolctl status --json` and the client library show it. */
export interface JobView {
  id: string;
  name: string;
  state: Job['state'];
  priority: number;
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number | null;
  tau: number | null;
  lr: number | null;
  imagesPerSec: number | null;
  etaSeconds: number | null;
  generation: number;
  generations: Generation[];
  workers: {agentId: string; host: string; rank: number; deviceId: string; lastHeartbeatMs: number}[];
  submittedAtMs: number;
  startedAtMs: number | null;
  finishedAtMs: number | null;
  message: string | null;
  result: Record<string, unknown> | null;
  spec: Job['spec'];
  schedule: Job['schedule'];
  /** Health across ranks while the coordinator has telemetry for the job (absent otherwise). */
  health?: JobHealth;
}

/**
 * What the REST API (and the embedded CLI) needs from the coordinator. Implemented by
 * coordinator/coordinator.ts; REST handlers only translate HTTP to these calls.
 */
export interface CoordinatorApi {
  /** Validates, resolves and queues; throws SpecError (nothing stored) on a bad document.
   *  Relative data paths resolve against `baseDir` (the spec file's folder for the CLI). */
  submit(doc: unknown, opts?: {baseDir?: string}): JobView;
  /** Stops the trainers, frees the devices; throws NotFoundError / ConflictError. */
  cancel(id: string): JobView;
  getJob(id: string): JobView | undefined;
  listJobs(): JobView[];
  metrics(id: string, opts?: {sinceStep?: number; limit?: number}): MetricPoint[];
  /** Per-rank step time, data time and z_std of the given steps (the dashboard's per-rank plots). */
  rankMetrics(id: string, steps: number[]): Map<number, RankSeries>;
  checkpoints(id: string): CheckpointRecord[];
  events(id: string, opts?: {afterSeq?: number; limit?: number}): JobEvent[];
  /** Live events of one job (server-sent events); returns the unsubscribe function. */
  subscribe(id: string, listener: (ev: JobEvent) => void): () => void;
  workers(): WorkerInfo[];
  /** True once the store is open and the gRPC and telemetry ports are bound. */
  ready(): boolean;
}
