/**
 * Reports agents relay about their trainers: rendezvous ready, trainer states, progress,
 * checkpoints, agent events. Each is fenced by generation: a stale one is dropped and counted.
 */
import type {
  AgentEventMsg, CheckpointReportMsg, ProgressMsg, RendezvousReadyMsg, TrainerStatusMsg,
} from '../agents/agent-messages';
import {isTerminal, type GenerationRun} from '../rendezvous/generation-run';
import {sendAll, type CoordinatorContext} from './context';
import {growTarget, maybeGrow} from './elastic';
import {checkpointPolicy} from './job-plan';
import {endGeneration, jobCheckpointDir, setState} from './lifecycle';

function current(ctx: CoordinatorContext, jobId: string, generation: number, what: string): GenerationRun | null {
  const run = ctx.runs.get(jobId);
  if (run && run.accepts(jobId, generation)) return run;
  ctx.metrics.staleReports.inc();
  ctx.log.debug({jobId, generation, what, current: run?.generation}, 'report of a stale generation dropped');
  return null;
}

export function onRendezvous(ctx: CoordinatorContext, r: RendezvousReadyMsg): void {
  const run = current(ctx, r.jobId, r.generation, 'rendezvous');
  if (!run) return;
  sendAll(ctx, run.onRendezvousReady(r.address));
  ctx.events.emit(r.jobId, 'info', 'generation', `generation ${r.generation}: rendezvous at ${r.address}, ranks assigned`);
}

function markRunning(ctx: CoordinatorContext, run: GenerationRun): void {
  const job = ctx.store.getJob(run.jobId)!;
  if (job.state === 'SCHEDULED' || job.state === 'RECOVERING' || job.state === 'WAITING') setState(ctx, run.jobId, 'RUNNING');
}

function firstProgress(ctx: CoordinatorContext, run: GenerationRun): void {
  if (run.firstProgressSeen) return;
  run.firstProgressSeen = true;
  markRunning(ctx, run);
  const fault = ctx.faultAtMs.get(run.jobId);
  if (fault === undefined) return;
  ctx.faultAtMs.delete(run.jobId);
  const gen = ctx.store.listGenerations(run.jobId).find((g) => g.generation === run.generation);
  const recoverySeconds = (Date.now() - fault) / 1000;
  if (gen) ctx.store.upsertGeneration(run.jobId, {...gen, recoverySeconds});
  ctx.events.emit(run.jobId, 'info', 'recovery', `recovered in ${recoverySeconds.toFixed(1)} s (fault detected -> first progress of generation ${run.generation})`, {recoverySeconds});
}

export function onProgress(ctx: CoordinatorContext, p: ProgressMsg): void {
  const run = current(ctx, p.jobId, p.generation, 'progress');
  if (!run) return;
  const slot = run.ranks[p.rank];
  if (!slot) return;
  slot.step = Math.max(slot.step, p.step);
  firstProgress(ctx, run);
  const job = ctx.store.getJob(p.jobId)!;
  const step = run.progressStep();
  if (step !== job.step) ctx.store.updateJob(p.jobId, {step});
  if (p.results) {
    const result = {...job.result, ...camelResults(p.results), resultStep: p.step};
    ctx.store.updateJob(p.jobId, {result});
    ctx.events.emit(p.jobId, 'info', 'result', `results at step ${p.step}: ${formatResults(p.results)}`, result);
  }
}

/** knn_top1 -> knnTop1, as the rest of the JSON the API serves. */
function camelResults(r: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [k.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()), v]));
}

function formatResults(r: Record<string, number>): string {
  return Object.entries(r).map(([k, v]) => `${k}=${v.toFixed(4)}`).join(' ');
}

export function onTrainerStatus(ctx: CoordinatorContext, agentId: string, t: TrainerStatusMsg): void {
  if (isTerminal(t.state) && ctx.agents.settled(agentId, t.jobId, t.generation, t.rank)) ctx.requestSchedule();
  const run = current(ctx, t.jobId, t.generation, 'trainer');
  if (!run) return;
  const slot = run.updateRank(t.rank, t.state, t.step, t.exitCode, t.message);
  if (!slot) return;
  if (t.state === 'RUNNING') markRunning(ctx, run);
  if (t.state === 'FAILED' || t.state === 'ABORTED') {
    const badCheckpoint = t.exitCode === 2 && run.plan.resumeCheckpoint !== '' && /checkpoint|manifest|sha256/i.test(t.message);
    if (badCheckpoint) {
      ctx.checkpoints.markBad(run.jobId, run.plan.resumeStep);
      ctx.events.emit(run.jobId, 'warn', 'checkpoint', `checkpoint at step ${run.plan.resumeStep} failed to load and is marked bad: ${t.message}`);
      endGeneration(ctx, run, 'bad-checkpoint', t.message);
    } else if (t.exitCode === 2) {
      endGeneration(ctx, run, 'bad-input', `rank ${t.rank} rejected its input: ${t.message}`, 'FAILED');
    } else {
      const how = t.state === 'ABORTED' ? 'was aborted' : `failed (exit ${t.exitCode})`;
      endGeneration(ctx, run, 'trainer-failed', `rank ${t.rank} on ${agentId} ${how}: ${t.message}`);
    }
    return;
  }
  if (t.state === 'PREEMPTED') endIfStopStalls(ctx, run);
  if (run.allIn('SUCCEEDED')) {
    ctx.store.updateJob(run.jobId, {step: run.progressStep()});
    endGeneration(ctx, run, 'completed', '', 'SUCCEEDED');
  } else if (run.allIn('SUCCEEDED', 'PREEMPTED')) {
    const grow = growTarget(run);
    endGeneration(ctx, run, grow ? 'grow' : 'preempted', grow
      ? `all ranks stopped at step ${run.progressStep()} after a checkpoint, to restart on ${grow} ranks`
      : `all ranks stopped at step ${run.progressStep()} after a checkpoint`);
  }
}

/** Ranks agree on one stop step; if some never report it within the grace period, stop waiting. */
function endIfStopStalls(ctx: CoordinatorContext, run: GenerationRun): void {
  const graceS = Number((ctx.store.getJob(run.jobId)?.spec.spec as any)?.preemption?.gracePeriodSeconds ?? 30);
  setTimeout(() => {
    if (ctx.runs.get(run.jobId) !== run || run.phase === 'ended') return;
    const left = run.ranks.filter((r) => r.state !== 'PREEMPTED' && r.state !== 'SUCCEEDED').map((r) => r.rank);
    endGeneration(ctx, run, 'preempted', `rank(s) ${left.join(', ')} did not stop within the ${graceS} s grace period`);
  }, (graceS + 5) * 1000).unref();
}

export function onCheckpoint(ctx: CoordinatorContext, c: CheckpointReportMsg): void {
  const run = current(ctx, c.jobId, c.generation, 'checkpoint');
  if (!run) return;
  if (!c.ok) {
    ctx.events.emit(c.jobId, 'warn', 'checkpoint', `checkpoint at step ${c.step} failed: ${c.error}; training goes on, older checkpoints kept`, {step: c.step});
    return;
  }
  const job = ctx.store.getJob(c.jobId)!;
  const pol = checkpointPolicy(job.spec);
  const before = ctx.store.listCheckpoints(c.jobId).some((x) => x.step === c.step && x.state === 'ok');
  ctx.checkpoints.record(c, jobCheckpointDir(ctx, c.jobId), pol.keepLast, pol.keepEvery);
  for (const slot of run.ranks) slot.step = Math.max(slot.step, c.step);
  if (!before) {
    ctx.events.emit(c.jobId, 'info', 'checkpoint', `checkpoint at step ${c.step}: ${c.path} (${c.bytes} bytes)`, {step: c.step, path: c.path});
  }
  maybeGrow(ctx, run);
}

export function onAgentEvent(ctx: CoordinatorContext, agentId: string, e: AgentEventMsg): void {
  if (e.draining) ctx.draining.add(agentId);
  const level = e.level === 'error' || e.level === 'warn' ? e.level : 'info';
  if (e.jobId) {
    if (!current(ctx, e.jobId, e.generation, 'event') && ctx.store.getJob(e.jobId) === undefined) return;
    ctx.events.emit(e.jobId, level, 'agent', `${agentId}: ${e.message}`, {agentId});
  } else {
    ctx.log[level]({agentId}, e.message);
  }
}
