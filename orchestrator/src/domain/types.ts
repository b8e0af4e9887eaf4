/**
 * Domain types shared by the coordinator's modules (store, placement, REST, CLI client).
 * Protobuf types stay at the edges (transport, telemetry codec); these are plain data.
 */

/** A job's life (docs/architecture.md §4). */
export type JobState =
  | 'QUEUED'
  | 'SCHEDULED'
  | 'RUNNING'
  | 'RECOVERING'
  | 'WAITING'
  | 'SUCCEEDED'
  | 'FAILED'
  | 'CANCELLED';

export const TERMINAL_STATES: readonly JobState[] = ['SUCCEEDED', 'FAILED', 'CANCELLED'];

/** The resolved job spec document (preset and defaults applied); see contract/job.schema.json. */
export interface JobSpec {
  apiVersion: 'byol/v1';
  kind: 'PretrainJob';
  metadata: {name: string; priority?: number; labels?: Record<string, string>};
  spec: Record<string, any>;
}

/** What the coordinator hands trainers with each assignment (docs/architecture.md §6). */
export interface ScheduleState {
  totalSteps: number;     // K
  warmupSteps: number;
  peakLr: number;         // baseLr, scaled by B/256 when lrScaling = linear
  tauBase: number;
  tauSchedule: 'cosine' | 'constant'; // spec.ema.schedule
  stepsPerEpoch: number;
  globalBatch: number;    // B
  microBatch: number;     // b per rank
  accumulation: number;   // a, W*b*a = B
}

/** One (re)start of a job's rank group (docs/architecture.md §4, issue 4 "History"). */
export interface Generation {
  generation: number;
  worldSize: number;
  startStep: number;
  endStep: number | null;
  endReason: string | null;      // 'completed' | 'preempted' | 'worker-lost' | 'trainer-failed' | 'cancelled' | ...
  stepsLost: number;
  recoverySeconds: number | null; // fault detected -> first step of this generation
  startedAtMs: number;
  endedAtMs: number | null;
  agents: string[];               // agent id per rank
}

export interface Job {
  id: string;                     // e.g. "cifar10-r18-7f3a2c"
  name: string;
  priority: number;
  state: JobState;
  spec: JobSpec;                  // resolved
  specHash: string;               // sha256 of the resolved spec JSON
  schedule: ScheduleState;        // for the full world size
  submittedAtMs: number;
  startedAtMs: number | null;
  finishedAtMs: number | null;
  step: number;                   // global optimizer steps completed
  totalSteps: number;
  generation: number;             // current (or last) generation, 0 before the first
  message: string | null;         // why it failed / is waiting
  result: Record<string, unknown> | null; // e.g. {knnTop1: 0.41}
}

export type CheckpointState = 'ok' | 'bad' | 'deleted';

export interface CheckpointRecord {
  jobId: string;
  step: number;
  path: string;
  bytes: number;
  sha256: string;
  state: CheckpointState;
  createdAtMs: number;
}

/** Per-step metrics aggregated across ranks (docs/architecture.md §9). */
export interface MetricPoint {
  step: number;
  generation: number;
  loss: number;           // mean over ranks
  tau: number;
  lr: number;
  imagesPerSec: number;   // total over ranks
  stepTimeS: number;      // slowest rank
  dataTimeS: number;      // slowest rank
  slowestRank: number;
  ranks: number;          // ranks that reported this step
  epoch: number;
  tMs: number;
  extra?: Record<string, number>;
  /** Per rank (index = rank; null = no frame from it for this step), for the dashboard and health checks. */
  perRank?: RankSeries;
}

/** Per-rank values of one step, rounded to 4 significant digits to keep stored points small. */
export interface RankSeries {
  stepTimeS: (number | null)[];
  dataTimeS: (number | null)[];
  zStd: (number | null)[];
  /** Part of the step time spent waiting for the other ranks (absent in points stored before it existed: 0). */
  syncWaitS?: (number | null)[];
}

/** A health alarm across a job's ranks (computed by the coordinator from per-step telemetry). */
export interface HealthAlarm {
  kind: 'collapse' | 'rank-skew' | 'stalled-ranks';
  sinceStep: number;
  message: string;
}

/** The health of a running job, as REST, the dashboard and `byolctl status` show it. */
export interface JobHealth {
  step: number;
  /** Mean online/target cosine similarity: the loss is a sum of two (2 - 2cos) terms, so 1 - loss/4. */
  cosineSimilarity: number | null;
  /** Mean z_std over ranks at the latest step; and the collapse threshold it is compared with. */
  zStd: number | null;
  collapseZStd: number;
  /** Slowest rank's step time over the median's (mean over the recent window); 1 = even. */
  rankSkew: number | null;
  slowestRank: number | null;
  stalledRanks: number[];
  alarms: HealthAlarm[];
}

export interface JobEvent {
  seq: number;
  jobId: string;
  tMs: number;
  level: 'info' | 'warn' | 'error';
  type: string;           // 'submitted' | 'state' | 'generation' | 'checkpoint' | 'agent' | 'metric' | ...
  message: string;
  data?: Record<string, unknown>;
}

export interface WorkerInfo {
  agentId: string;
  host: string;
  devices: {id: string; kind: string; name: string; memoryBytes: number}[];
  versions: Record<string, string>;
  connected: boolean;
  lastHeartbeatMs: number;
  /** device id -> job id holding it */
  assigned: Record<string, {jobId: string; generation: number; rank: number}>;
}
