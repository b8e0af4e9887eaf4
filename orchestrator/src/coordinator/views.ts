/** JobView: what REST and the CLI show for a job (loss, tau, LR, img/s from the latest aggregated step, ETA). */
import type {JobView} from '../domain/coordinator-api';
import type {Job, MetricPoint} from '../domain/types';
import type {CoordinatorContext} from './context';

/** What a view reads: nothing it could change. */
type ViewSources = Pick<CoordinatorContext, 'store' | 'telemetry' | 'live' | 'health' | 'agents'>;

/** Seconds left: remaining steps times the global batch over the current throughput. */
export function etaSeconds(step: number, totalSteps: number, globalBatch: number, imagesPerSec: number | null): number | null {
  if (imagesPerSec === null || !(imagesPerSec > 0)) return null;
  return (Math.max(0, totalSteps - step) * globalBatch) / imagesPerSec;
}

function latestPoint(ctx: Pick<ViewSources, 'store' | 'telemetry'>, job: Job): MetricPoint | null {
  const live = ctx.telemetry.aggregator.latest(job.id);
  if (live) return live;
  const tail = ctx.store.listMetrics(job.id, {sinceStep: Math.max(0, job.step - 2)});
  return tail.length > 0 ? tail[tail.length - 1] : null;
}

export function jobView(ctx: ViewSources, job: Job): JobView {
  const p = latestPoint(ctx, job);
  const run = ctx.live.runOf(job.id);
  const running = job.state === 'RUNNING';
  const imagesPerSec = p ? p.imagesPerSec : null;
  const health = ctx.health.health(job.id);
  return {
    id: job.id,
    name: job.name,
    state: job.state,
    priority: job.priority,
    step: job.step,
    totalSteps: job.totalSteps,
    epoch: p?.epoch ?? (job.schedule.stepsPerEpoch > 0 ? job.step / job.schedule.stepsPerEpoch : 0),
    loss: p?.loss ?? null,
    tau: p?.tau ?? null,
    lr: p?.lr ?? null,
    imagesPerSec,
    etaSeconds: running ? etaSeconds(job.step, job.totalSteps, job.schedule.globalBatch, imagesPerSec) : null,
    generation: job.generation,
    generations: ctx.store.listGenerations(job.id),
    workers: run
      ? run.ranks.map((r) => {
        const a = ctx.agents.get(r.agentId);
        return {agentId: r.agentId, host: a?.host ?? '', rank: r.rank, deviceId: r.deviceId, lastHeartbeatMs: a?.lastSeenMs ?? 0};
      })
      : [],
    submittedAtMs: job.submittedAtMs,
    startedAtMs: job.startedAtMs,
    finishedAtMs: job.finishedAtMs,
    message: job.message,
    result: job.result,
    spec: job.spec,
    schedule: job.schedule,
    ...(health ? {health} : {}),
  };
}
