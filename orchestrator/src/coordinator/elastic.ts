/**
 * Elastic grow-back (issue 4, docs/architecture.md §5): a job that lost ranks goes on with fewer and the same global
 * batch. When devices come back, its ranks stop together at the next step with a checkpoint (no step lost)
 * and the placement round starts a larger generation from it.
 */
import type {GenerationRun} from '../rendezvous/generation-run';
import {worldSizeFor} from '../placement/gang-placement';
import {sendAll, type CoordinatorContext} from './context';
import {resourcesOf} from './spec-fields';

const growing = new WeakMap<GenerationRun, number>();

/** The world size this generation stops to grow to, if it does. */
export function growTarget(run: GenerationRun): number | undefined {
  return growing.get(run);
}

/** Called at each checkpoint: a checkpoint boundary is where the group may grow. */
export function maybeGrow(ctx: Pick<CoordinatorContext, 'store' | 'agents' | 'live' | 'events' | 'log'>, run: GenerationRun): void {
  if (growing.has(run) || run.phase === 'ended') return;
  const job = ctx.store.getJob(run.jobId);
  if (!job || job.state !== 'RUNNING') return;
  const r = resourcesOf(job.spec);
  const W = run.ranks.length;
  if (W >= r.workers) return;
  // Jobs waiting for devices get them before a running job grows.
  if (ctx.store.listJobs({states: ['QUEUED', 'RECOVERING', 'WAITING']}).length > 0) return;
  const free = ctx.agents.freeDevices().filter((d) => !ctx.live.isDraining(d.agentId)).length;
  const target = worldSizeFor({
    id: job.id, priority: job.priority, submittedAtMs: job.submittedAtMs, workers: r.workers,
    minWorkers: r.minWorkers, globalBatch: r.globalBatch, resuming: true,
  }, W + free);
  if (target === null || target <= W) return;
  growing.set(run, target);
  ctx.events.emit(run.jobId, 'info', 'elastic',
    `devices for ${target} ranks are free again: stopping at the next step with a checkpoint to grow from ${W} to ${target} ranks`,
    {from: W, to: target});
  sendAll(ctx, run.ranks.map((slot) => ({
    agentId: slot.agentId,
    msg: {kind: 'command' as const, jobId: run.jobId, generation: run.generation, command: 'STOP_AT_STEP' as const, step: 0},
  })));
}
