/** CoordinatorApi over the coordinator's modules: REST and the embedded CLI call only this. */
import {randomBytes} from 'node:crypto';
import {ConflictError, NotFoundError} from '../domain/errors';
import type {CoordinatorApi, JobView} from '../domain/coordinator-api';
import type {CheckpointRecord, Job, JobEvent, MetricPoint, RankSeries, WorkerInfo} from '../domain/types';
import {TERMINAL_STATES} from '../domain/types';
import {resolveSpec, scheduleFor, specHash} from '../spec';
import {resourcesOf} from './spec-fields';
import {endGeneration, finishJob, type EndContext} from './lifecycle';
import {jobView} from './views';

/** "<name>-<6 hex>": readable and unique enough for one coordinator. */
function newJobId(name: string): string {
  return `${name}-${randomBytes(3).toString('hex')}`;
}

export class Coordinator implements CoordinatorApi {
  constructor(private readonly ctx: EndContext, private readonly isReady: () => boolean) {}

  submit(doc: unknown, opts: {baseDir?: string} = {}): JobView {
    const ctx = this.ctx;
    const baseDir = opts.baseDir ?? ctx.knobs.dataRoots[0];
    const spec = resolveSpec(doc, {baseDir, dataRoots: ctx.knobs.dataRoots.length > 0 ? ctx.knobs.dataRoots : undefined});
    // Planned for the full world size now, so a spec that cannot run fails at submit, not later.
    const schedule = scheduleFor(spec, resourcesOf(spec).workers);
    const now = Date.now();
    const job: Job = {
      id: newJobId(spec.metadata.name), name: spec.metadata.name, priority: spec.metadata.priority ?? 0,
      state: 'QUEUED', spec, specHash: specHash(spec), schedule, submittedAtMs: now, startedAtMs: null,
      finishedAtMs: null, step: 0, totalSteps: schedule.totalSteps, generation: 0, message: null, result: null,
    };
    ctx.store.insertJob(job);
    ctx.events.emit(job.id, 'info', 'submitted',
      `submitted: ${resourcesOf(spec).workers} rank(s), ${schedule.totalSteps} steps, global batch ${schedule.globalBatch}`);
    ctx.requestPlacement();
    return jobView(ctx, job);
  }

  cancel(id: string): JobView {
    const ctx = this.ctx;
    const job = this.mustGet(id);
    if (TERMINAL_STATES.includes(job.state)) throw new ConflictError(`job ${id} is already ${job.state}; nothing to cancel`);
    const run = ctx.live.runOf(id);
    if (run) endGeneration(ctx, run, 'cancelled', 'cancelled by a user', 'CANCELLED');
    else finishJob(ctx, id, 'CANCELLED', 'cancelled by a user');
    return jobView(ctx, this.mustGet(id));
  }

  getJob(id: string): JobView | undefined {
    const job = this.ctx.store.getJob(id);
    return job ? jobView(this.ctx, job) : undefined;
  }

  listJobs(): JobView[] {
    return this.ctx.store.listJobs().map((j) => jobView(this.ctx, j));
  }

  metrics(id: string, opts?: {sinceStep?: number; limit?: number}): MetricPoint[] {
    this.mustGet(id);
    return this.ctx.store.listMetrics(id, opts);
  }

  rankMetrics(id: string, steps: number[]): Map<number, RankSeries> {
    this.mustGet(id);
    return this.ctx.store.listRankMetrics(id, steps);
  }

  checkpoints(id: string): CheckpointRecord[] {
    this.mustGet(id);
    return this.ctx.store.listCheckpoints(id);
  }

  events(id: string, opts?: {afterSeq?: number; limit?: number}): JobEvent[] {
    this.mustGet(id);
    return this.ctx.store.listEvents(id, opts);
  }

  subscribe(id: string, listener: (ev: JobEvent) => void): () => void {
    this.mustGet(id);
    return this.ctx.events.subscribe(id, listener);
  }

  workers(): WorkerInfo[] {
    return this.ctx.agents.list();
  }

  ready(): boolean {
    return this.isReady();
  }

  private mustGet(id: string): Job {
    const job = this.ctx.store.getJob(id);
    if (!job) throw new NotFoundError('job', id);
    return job;
  }
}
