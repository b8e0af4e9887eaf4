/**
 * A job's state machine (docs/architecture.md §4): start a generation on placed devices, end one (with its
 * cause), finish the job. Recovery is "end the generation, mark the job RECOVERING, schedule":
 * the placement round then starts the next generation from the latest good checkpoint.
 */
import {join} from 'node:path';
import type {Generation, Job, JobState} from '../domain/types';
import {TERMINAL_STATES} from '../domain/types';
import {GenerationRun, isTerminal} from '../rendezvous/generation-run';
import type {Device} from '../placement/gang-placement';
import {sendAll, type CoordinatorContext} from './context';
import {scheduleForWorld} from './spec-fields';

// Each function takes only the part of the context it touches, so the compiler holds it to that.
/** Changing a job's state: its row and its events. */
export type JobRecords = Pick<CoordinatorContext, 'store' | 'events'>;
/** Finishing a job: it also frees the job's devices, telemetry, health watch and launcher agents. */
export type FinishContext = JobRecords & Pick<CoordinatorContext,
  'agents' | 'live' | 'telemetry' | 'health' | 'launcher' | 'knobs' | 'log' | 'closing' | 'requestPlacement'>;
/** Ending a generation: finishing, plus counting the recovery. */
export type EndContext = FinishContext & Pick<CoordinatorContext, 'metrics'>;
/** Starting a generation: the checkpoint to resume from and where telemetry goes; ending it if rendezvous times out. */
export type StartContext = EndContext & Pick<CoordinatorContext, 'checkpoints' | 'telemetryAddress'>;

export const jobCheckpointDir = (ctx: Pick<CoordinatorContext, 'knobs'>, jobId: string): string => join(ctx.knobs.checkpointRoot, jobId);

export function setState(ctx: JobRecords, jobId: string, state: JobState, message: string | null = null): Job {
  const before = ctx.store.getJob(jobId)!;
  const patch: Partial<Job> = {state, message};
  if (TERMINAL_STATES.includes(state)) patch.finishedAtMs = Date.now();
  const job = ctx.store.updateJob(jobId, patch);
  if (before.state !== state) {
    ctx.events.emit(jobId, state === 'FAILED' ? 'error' : 'info', 'state', `${before.state} -> ${state}${message ? `: ${message}` : ''}`, {from: before.state, to: state});
  }
  return job;
}

/** Starts generation job.generation + 1 on `devices` (rank i on devices[i]). */
export function startGeneration(ctx: StartContext, job: Job, devices: Device[]): GenerationRun | null {
  const W = devices.length;
  let schedule;
  try {
    schedule = scheduleForWorld(job, W);
  } catch (err) {
    setState(ctx, job.id, 'FAILED', `cannot plan ${W} ranks: ${(err as Error).message}`);
    return null;
  }
  const resume = ctx.checkpoints.latestGood(job.id);
  const generation = job.generation + 1;
  const run = new GenerationRun({
    jobId: job.id, generation, ranks: devices.map((d) => ({agentId: d.agentId, deviceId: d.deviceId})),
    schedule, specJson: JSON.stringify(job.spec), specHash: job.specHash, resumeCheckpoint: resume?.path ?? '', resumeStep: resume?.step ?? 0,
    checkpointDir: jobCheckpointDir(ctx, job.id), telemetryAddress: ctx.telemetryAddress,
    telemetryKeys: devices.map((_, rank) => ctx.telemetry.keys.keyFor(job.id, generation, rank)),
  });
  devices.forEach((d, rank) => ctx.agents.assign(d.agentId, d.deviceId, {jobId: job.id, generation, rank}));
  ctx.live.track(run);
  ctx.telemetry.aggregator.setGeneration(job.id, generation, W, schedule.totalSteps);
  ctx.health.watch(job.id, job.spec.spec, generation);

  // The previous generation's lost steps are known now: its end step minus where we resume.
  const gens = ctx.store.listGenerations(job.id);
  const prev = gens.find((g) => g.generation === job.generation);
  if (prev && prev.endStep !== null) ctx.store.upsertGeneration(job.id, {...prev, stepsLost: Math.max(0, prev.endStep - run.setup.resumeStep)});
  const gen: Generation = {
    generation, worldSize: W, startStep: run.setup.resumeStep, endStep: null, endReason: null, stepsLost: 0,
    recoverySeconds: null, startedAtMs: run.startedAtMs, endedAtMs: null, agents: run.agentIds(),
  };
  ctx.store.upsertGeneration(job.id, gen);
  ctx.store.updateJob(job.id, {
    generation, step: run.setup.resumeStep, startedAtMs: job.startedAtMs ?? Date.now(),
  });
  setState(ctx, job.id, 'SCHEDULED');
  ctx.events.emit(job.id, 'info', 'generation',
    `generation ${generation}: ${W} rank(s) on ${run.agentIds().join(', ')}; ` +
    (resume ? `resuming from step ${resume.step} (${resume.path})` : 'fresh start') +
    `; micro-batch ${schedule.microBatch} x ${schedule.accumulation} accumulation per rank, global batch ${schedule.globalBatch}` +
    (schedule.accumulation > 1 ? ` (batch-norm statistics are taken over micro-batches of ${schedule.microBatch} per rank)` : ''),
    {generation, worldSize: W, resumeStep: run.setup.resumeStep});
  sendAll(ctx, run.begin());
  setTimeout(() => { // a timer that fires after close() must not touch the closed store
    if (!ctx.closing && ctx.live.isCurrent(run) && run.phase === 'rendezvous') {
      endGeneration(ctx, run, 'rendezvous-timeout', `rank 0's agent ${run.ranks[0].agentId} did not start the rendezvous store in time`);
    }
  }, ctx.knobs.rendezvousTimeoutMs).unref();
  return run;
}

/**
 * Ends a generation: abort live trainers, free its devices, record it. With `then` = a terminal
 * state the job ends; otherwise the job goes RECOVERING and the placement round starts the next one.
 */
export function endGeneration(
  ctx: EndContext, run: GenerationRun, reason: string, message: string,
  then: JobState = 'RECOVERING',
): void {
  if (run.phase === 'ended') return;
  abortRun(ctx, run);
  ctx.live.untrack(run);
  ctx.agents.release(run.jobId, run.generation);
  const endStep = run.progressStep();
  const gen = ctx.store.listGenerations(run.jobId).find((g) => g.generation === run.generation);
  if (gen) ctx.store.upsertGeneration(run.jobId, {...gen, endStep, endReason: reason, endedAtMs: Date.now()});
  const terminal = TERMINAL_STATES.includes(then);
  ctx.events.emit(run.jobId, terminal && then !== 'FAILED' ? 'info' : 'warn', 'generation',
    `generation ${run.generation} ended at step ${endStep}: ${reason}${message ? ` (${message})` : ''}`,
    {generation: run.generation, reason, endStep});
  if (terminal) {
    finishJob(ctx, run.jobId, then, then === 'SUCCEEDED' ? null : message);
  } else {
    // Two faults in a row: the job has been down since the first one (cleared at the next progress).
    ctx.live.faultDetected(run.jobId, Date.now());
    ctx.metrics.recoveries.inc({job: run.jobId});
    if (tooManyFruitless(ctx, run.jobId)) {
      finishJob(ctx, run.jobId, 'FAILED', `${ctx.knobs.maxFruitlessGenerations} generations in a row made no progress; last: ${reason} ${message}`);
    } else {
      setState(ctx, run.jobId, 'RECOVERING', `${reason}: ${message}`);
    }
  }
  ctx.requestPlacement();
}

/** ABORT live trainers; their devices settle until the agents report those trainers ended. */
function abortRun(ctx: Pick<CoordinatorContext, 'agents' | 'log' | 'knobs'>, run: GenerationRun): void {
  sendAll(ctx, run.abortLive());
  if (run.phase === 'assigned' || run.phase === 'reattaching') {
    const until = Date.now() + ctx.knobs.settleTimeoutMs;
    for (const r of run.ranks) {
      if (r.deviceId && (r.state !== 'UNSPECIFIED' || run.phase === 'assigned') && !isTerminal(r.state)) {
        ctx.agents.settle(r.agentId, r.deviceId, {jobId: run.jobId, generation: run.generation, rank: r.rank}, until);
      }
    }
  }
  run.phase = 'ended';
}

function tooManyFruitless(ctx: Pick<CoordinatorContext, 'store' | 'knobs'>, jobId: string): boolean {
  const gens = ctx.store.listGenerations(jobId).slice(-ctx.knobs.maxFruitlessGenerations);
  return gens.length >= ctx.knobs.maxFruitlessGenerations &&
    gens.every((g) => g.endStep !== null && g.endStep <= g.startStep && g.endReason !== 'preempted');
}

/** Terminal state: free everything the job holds. */
export function finishJob(ctx: FinishContext, jobId: string, state: JobState, message: string | null): void {
  const run = ctx.live.forgetJob(jobId);
  if (run) abortRun(ctx, run);
  ctx.agents.release(jobId);
  // Frames travel apart from the trainers' exit reports: let the last ones land before forgetting.
  setTimeout(() => {
    if (ctx.closing || ctx.live.hasRun(jobId)) return;
    ctx.telemetry.aggregator.forget(jobId);
    ctx.health.forget(jobId);
  }, 10_000).unref();
  setState(ctx, jobId, state, message);
  ctx.launcher.release(jobId).catch((err) => ctx.log.warn({err, jobId}, 'launcher could not release the job\'s agents'));
  ctx.requestPlacement();
}
