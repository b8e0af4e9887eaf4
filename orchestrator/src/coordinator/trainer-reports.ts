/**
 * Reports agents relay about their trainers: rendezvous ready, trainer states, progress,
 * checkpoints, agent events. Each is fenced by generation (a stale one is dropped and counted),
 * then authorised and checked for plausibility (report-guard.ts): only the agent holding a rank
 * reports for it, only rank 0's holder hosts the rendezvous and registers checkpoints.
 */
import type {
  AgentEventMsg, CheckpointReportMsg, ProgressMsg, RendezvousReadyMsg, TrainerStatusMsg,
} from '../agents/agent-messages';
import {isTerminal, type GenerationRun} from '../rendezvous/generation-run';
import {sendAll, type CoordinatorContext} from './context';
import {growTarget, maybeGrow} from './elastic';
import {checkpointPolicy} from './spec-fields';
import {checkpointPathProblem} from '../checkpoints/checkpoint-path';
import {endGeneration, jobCheckpointDir, setState, type EndContext, type JobRecords} from './lifecycle';
import {addressProblem, cleanText, heldSlot, isRefusal, refuse, resultsProblem, stepProblem} from './report-guard';

/** Fencing and refusing reports: the live generation, the counters and the rate-limited warnings. */
type ReportGuard = Pick<CoordinatorContext, 'live' | 'metrics' | 'log' | 'warnLimited'>;
/** What handling any report may touch (agent-sessions.ts dispatches them all). */
export type ReportContext = EndContext & Pick<CoordinatorContext, 'checkpoints' | 'warnLimited'>;

function current(ctx: Pick<CoordinatorContext, 'live' | 'metrics' | 'log'>, jobId: string, generation: number, what: string): GenerationRun | null {
  const run = ctx.live.runOf(jobId);
  if (run && run.accepts(jobId, generation)) return run;
  ctx.metrics.staleReports.inc();
  ctx.log.debug({jobId, generation, what, current: run?.generation}, 'report of a stale generation dropped');
  return null;
}

export function onRendezvous(ctx: ReportGuard & Pick<CoordinatorContext, 'agents' | 'events'>, agentId: string, r: RendezvousReadyMsg): void {
  const run = current(ctx, r.jobId, r.generation, 'rendezvous');
  if (!run) return;
  const held = heldSlot(run, agentId, 0);
  const bad = isRefusal(held) ? held : addressProblem(r.address);
  if (bad) return refuse(ctx, 'rendezvous', agentId, bad, {jobId: r.jobId, generation: r.generation});
  if (run.phase !== 'rendezvous') return; // a repeated answer: the ranks already have the address
  sendAll(ctx, run.onRendezvousReady(r.address));
  ctx.events.emit(r.jobId, 'info', 'generation', `generation ${r.generation}: rendezvous at ${r.address}, ranks assigned`);
}

function markRunning(ctx: JobRecords, run: GenerationRun): void {
  const job = ctx.store.getJob(run.jobId)!;
  if (job.state === 'SCHEDULED' || job.state === 'RECOVERING' || job.state === 'WAITING') setState(ctx, run.jobId, 'RUNNING');
}

function firstProgress(ctx: JobRecords & Pick<CoordinatorContext, 'live'>, run: GenerationRun): void {
  if (run.firstProgressSeen) return;
  run.firstProgressSeen = true;
  markRunning(ctx, run);
  const fault = ctx.live.takeFault(run.jobId);
  if (fault === undefined) return;
  const gen = ctx.store.listGenerations(run.jobId).find((g) => g.generation === run.generation);
  const recoverySeconds = (Date.now() - fault) / 1000;
  if (gen) ctx.store.upsertGeneration(run.jobId, {...gen, recoverySeconds});
  ctx.events.emit(run.jobId, 'info', 'recovery', `recovered in ${recoverySeconds.toFixed(1)} s (fault detected -> first progress of generation ${run.generation})`, {recoverySeconds});
}

export function onProgress(ctx: ReportGuard & JobRecords, agentId: string, p: ProgressMsg): void {
  const run = current(ctx, p.jobId, p.generation, 'progress');
  if (!run) return;
  const fields = {jobId: p.jobId, generation: p.generation, rank: p.rank, step: p.step};
  const slot = heldSlot(run, agentId, p.rank);
  if (isRefusal(slot)) return refuse(ctx, 'progress', agentId, slot, fields);
  const bad = stepProblem(run, p.step) ?? resultsProblem(p.rank, p.results) ??
    (p.step < slot.lastProgress ? {reason: 'step_not_monotone', detail: `rank ${p.rank} went back from step ${slot.lastProgress} to ${p.step}`} : null) ??
    (Number.isFinite(p.epoch) && p.epoch >= 0 ? null : {reason: 'non_finite', detail: `epoch ${p.epoch} is not a finite number >= 0`});
  if (bad) return refuse(ctx, 'progress', agentId, bad, fields);
  slot.lastProgress = p.step;
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

export function onTrainerStatus(ctx: ReportContext, agentId: string, t: TrainerStatusMsg): void {
  if (isTerminal(t.state) && ctx.agents.settled(agentId, t.jobId, t.generation, t.rank)) ctx.requestPlacement();
  const run = current(ctx, t.jobId, t.generation, 'trainer');
  if (!run) return;
  const held = heldSlot(run, agentId, t.rank);
  const bad = isRefusal(held) ? held : stepProblem(run, t.step);
  if (bad) return refuse(ctx, 'trainer', agentId, bad, {jobId: t.jobId, generation: t.generation, rank: t.rank, state: t.state});
  t = {...t, message: cleanText(t.message)};
  const slot = run.updateRank(t.rank, t.state, t.step, t.exitCode, t.message);
  if (!slot) return;
  if (t.state === 'RUNNING') markRunning(ctx, run);
  if (t.state === 'FAILED' || t.state === 'ABORTED') {
    const badCheckpoint = t.exitCode === 2 && run.setup.resumeCheckpoint !== '' && /checkpoint|manifest|sha256/i.test(t.message);
    if (badCheckpoint) {
      ctx.checkpoints.markBad(run.jobId, run.setup.resumeStep);
      ctx.events.emit(run.jobId, 'warn', 'checkpoint', `checkpoint at step ${run.setup.resumeStep} failed to load and is marked bad: ${t.message}`);
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
function endIfStopStalls(ctx: EndContext, run: GenerationRun): void {
  const graceS = Number((ctx.store.getJob(run.jobId)?.spec.spec as any)?.preemption?.gracePeriodSeconds ?? 30);
  setTimeout(() => {
    if (ctx.closing || !ctx.live.isCurrent(run) || run.phase === 'ended') return;
    const left = run.ranks.filter((r) => r.state !== 'PREEMPTED' && r.state !== 'SUCCEEDED').map((r) => r.rank);
    endGeneration(ctx, run, 'preempted', `rank(s) ${left.join(', ')} did not stop within the ${graceS} s grace period`);
  }, (graceS + 5) * 1000).unref();
}

/** Checkpoints are written by rank 0 only, as step-<k> right inside the job's checkpoint folder. */
export function onCheckpoint(ctx: ReportGuard & JobRecords & Pick<CoordinatorContext, 'knobs' | 'checkpoints' | 'agents'>, agentId: string, c: CheckpointReportMsg): void {
  const run = current(ctx, c.jobId, c.generation, 'checkpoint');
  if (!run) return;
  const held = heldSlot(run, agentId, 0);
  const bad = isRefusal(held) ? held : stepProblem(run, c.step) ?? (c.ok ? checkpointProblem(ctx, c) : null);
  if (bad) return refuse(ctx, 'checkpoint', agentId, bad, {jobId: c.jobId, generation: c.generation, step: c.step, path: c.path.slice(0, 300)});
  if (!c.ok) {
    ctx.events.emit(c.jobId, 'warn', 'checkpoint', `checkpoint at step ${c.step} failed: ${cleanText(c.error)}; training goes on, older checkpoints kept`, {step: c.step});
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

function checkpointProblem(ctx: Pick<CoordinatorContext, 'knobs'>, c: CheckpointReportMsg): {reason: string; detail: string} | null {
  const where = checkpointPathProblem(c.path, jobCheckpointDir(ctx, c.jobId), c.step);
  if (where) return {reason: 'path_outside_root', detail: `checkpoint path ${JSON.stringify(c.path.slice(0, 300))}: ${where}`};
  if (!/^[0-9a-f]{64}$/.test(c.sha256) || !Number.isSafeInteger(c.bytes) || c.bytes < 0) {
    return {reason: 'implausible_checkpoint', detail: 'sha256 must be 64 hex digits and bytes a whole number'};
  }
  return null;
}

/** Job events only from an agent that holds, or held, a rank of that job; the agent's own draining flag. */
export function onAgentEvent(ctx: ReportGuard & JobRecords, agentId: string, e: AgentEventMsg): void {
  if (e.draining) ctx.live.drain(agentId);
  const level = e.level === 'error' || e.level === 'warn' ? e.level : 'info';
  const message = cleanText(e.message);
  if (e.jobId) {
    if (!current(ctx, e.jobId, e.generation, 'event') && ctx.store.getJob(e.jobId) === undefined) return;
    const ranAgents = new Set(ctx.store.listGenerations(e.jobId).flatMap((g) => g.agents));
    if (!ranAgents.has(agentId)) {
      return refuse(ctx, 'event', agentId, {reason: 'not_holder', detail: `it never held a rank of ${e.jobId}`}, {jobId: e.jobId});
    }
    ctx.events.emit(e.jobId, level, 'agent', `${agentId}: ${message}`, {agentId});
  } else {
    ctx.log[level]({agentId}, message);
  }
}
