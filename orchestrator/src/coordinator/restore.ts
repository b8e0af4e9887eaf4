/**
 * Coordinator restart (docs/architecture.md §8): jobs come back from the store. A generation that was
 * running waits `reattachGraceMs` for its agents to reconnect and list their trainers in Hello;
 * if some rank does not come back, the generation ends and the job recovers as after any fault.
 */
import {GenerationRun} from '../rendezvous/generation-run';
import type {CoordinatorContext} from './context';
import {scheduleForWorld} from './spec-fields';
import {endGeneration, jobCheckpointDir, setState, type EndContext} from './lifecycle';

export function restoreFromStore(ctx: EndContext & Pick<CoordinatorContext, 'telemetryAddress'>): void {
  for (const job of ctx.store.listJobs({states: ['SCHEDULED', 'RUNNING']})) {
    const gen = ctx.store.listGenerations(job.id).find((g) => g.generation === job.generation);
    if (!gen || gen.endStep !== null) {
      setState(ctx, job.id, 'RECOVERING', 'coordinator restarted with no live generation');
      ctx.live.faultDetected(job.id, Date.now());
      continue;
    }
    let schedule;
    try {
      schedule = scheduleForWorld(job, gen.worldSize);
    } catch (err) {
      setState(ctx, job.id, 'FAILED', `cannot re-plan after restart: ${(err as Error).message}`);
      continue;
    }
    const run = new GenerationRun({
      jobId: job.id, generation: gen.generation, ranks: gen.agents.map((agentId) => ({agentId, deviceId: ''})),
      schedule, specJson: JSON.stringify(job.spec), specHash: job.specHash, resumeCheckpoint: '', resumeStep: gen.startStep,
      checkpointDir: jobCheckpointDir(ctx, job.id), telemetryAddress: ctx.telemetryAddress,
      telemetryKeys: gen.agents.map((_, rank) => ctx.telemetry.keys.keyFor(job.id, gen.generation, rank)),
    }, {reattaching: true});
    for (const r of run.ranks) r.step = job.step;
    run.firstProgressSeen = true;
    ctx.live.track(run);
    ctx.telemetry.aggregator.setGeneration(job.id, gen.generation, gen.worldSize, schedule.totalSteps);
    ctx.health.watch(job.id, job.spec.spec, gen.generation);
    ctx.events.emit(job.id, 'info', 'generation', `coordinator restarted; waiting up to ${ctx.knobs.reattachGraceMs} ms for generation ${gen.generation}'s agents to re-attach`);
    setTimeout(() => {
      if (ctx.closing || !ctx.live.isCurrent(run) || run.phase !== 'reattaching') return;
      const missing = run.ranks.filter((r) => r.state === 'UNSPECIFIED').map((r) => `rank ${r.rank} (${r.agentId})`);
      endGeneration(ctx, run, 'coordinator-restart', `not re-attached in time: ${missing.join(', ')}`);
    }, ctx.knobs.reattachGraceMs).unref();
  }
  for (const job of ctx.store.listJobs({states: ['RECOVERING', 'WAITING']})) {
    ctx.live.faultDetected(job.id, Date.now());
  }
}
