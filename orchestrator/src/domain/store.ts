import type {CheckpointRecord, CheckpointState, Generation, Job, JobEvent, JobState, MetricPoint, RankSeries} from './types';

/**
 * The coordinator's durable state (docs/architecture.md §2: it can restart at any time).
 * One implementation (SQLite) lives in ../store/; any implementation must pass the suite in
 * test/helpers/job-store-conformance.ts. Every method is synchronous because better-sqlite3 is,
 * which keeps the coordinator's state machine free of interleavings.
 */
export interface JobStore {
  /** Throws if a job with this id exists. */
  insertJob(job: Job): void;
  getJob(id: string): Job | undefined;
  /** Newest first. */
  listJobs(filter?: {states?: JobState[]; limit?: number}): Job[];
  /** Patch the mutable fields of a job; throws if the id is unknown. */
  updateJob(id: string, patch: Partial<Omit<Job, 'id' | 'spec' | 'specHash' | 'submittedAtMs'>>): Job;

  upsertGeneration(jobId: string, gen: Generation): void;
  listGenerations(jobId: string): Generation[];

  addCheckpoint(rec: CheckpointRecord): void;
  setCheckpointState(jobId: string, step: number, state: CheckpointState): void;
  /** Ascending by step. */
  listCheckpoints(jobId: string, opts?: {states?: CheckpointState[]}): CheckpointRecord[];

  /** Keeps at most `maxPoints` per job (oldest dropped); a point's perRank goes to its own table. */
  appendMetrics(jobId: string, points: MetricPoint[], maxPoints: number): void;
  /** Points without their per-rank values (those are kept apart: listRankMetrics). */
  listMetrics(jobId: string, opts?: {sinceStep?: number; limit?: number}): MetricPoint[];
  /** Per-rank values of the given steps (steps without them are left out). */
  listRankMetrics(jobId: string, steps: number[]): Map<number, RankSeries>;

  /** Assigns seq; returns the stored event. */
  appendEvent(ev: Omit<JobEvent, 'seq'>): JobEvent;
  listEvents(jobId: string, opts?: {afterSeq?: number; limit?: number}): JobEvent[];

  close(): void;
}
