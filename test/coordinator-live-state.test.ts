/** LiveState (coordinator/live-state.ts): the one owner of the coordinator's in-memory run state. */
import {describe, expect, test} from '@jest/globals';
import {LiveState} from '../orchestrator/src/coordinator/live-state';
import {GenerationRun} from '../orchestrator/src/rendezvous/generation-run';

const schedule = {totalSteps: 10, warmupSteps: 1, peakLr: 1, tauBase: 0.99, tauSchedule: 'cosine' as const, stepsPerEpoch: 5,
  globalBatch: 8, microBatch: 4, accumulation: 1};

function run(jobId: string, generation: number, agents: string[]): GenerationRun {
  return new GenerationRun({
    jobId, generation, ranks: agents.map((agentId) => ({agentId, deviceId: 'cpu:0'})), schedule, specJson: '{}', specHash: '',
    resumeCheckpoint: '', resumeStep: 0, checkpointDir: '/c', telemetryAddress: 'tcp://127.0.0.1:1',
    telemetryKeys: agents.map(() => new Uint8Array(32)),
  });
}

describe('LiveState', () => {
  test('a generation is current until untracked; an older one cannot untrack its successor', () => {
    const live = new LiveState();
    const g1 = run('j', 1, ['a']);
    const g2 = run('j', 2, ['b']);
    live.track(g1);
    expect(live.runOf('j')).toBe(g1);
    live.track(g2);
    expect(live.isCurrent(g1)).toBe(false);
    live.untrack(g1);
    expect(live.runOf('j')).toBe(g2);
    live.untrack(g2);
    expect(live.hasRun('j')).toBe(false);
  });

  test('which generations hold an agent; ended ones do not count as holding it', () => {
    const live = new LiveState();
    const x = run('x', 1, ['a', 'b']);
    live.track(x);
    live.track(run('y', 1, ['c']));
    expect(live.runsWithAgent('b')).toEqual([x]);
    expect(live.holdsAgent('b')).toBe(true);
    x.phase = 'ended';
    expect(live.holdsAgent('b')).toBe(false);
    expect(live.holdsAgent('zz')).toBe(false);
  });

  test('a second fault keeps the first time; taking it forgets it', () => {
    const live = new LiveState();
    live.faultDetected('j', 100);
    live.faultDetected('j', 200);
    expect(live.takeFault('j')).toBe(100);
    expect(live.takeFault('j')).toBeUndefined();
  });

  test('the launcher is asked once per job state; forgetting the job forgets everything it had', () => {
    const live = new LiveState();
    expect(live.launchOnce('j', 'QUEUED:0')).toBe(true);
    expect(live.launchOnce('j', 'QUEUED:0')).toBe(false);
    expect(live.launchOnce('j', 'RECOVERING:1')).toBe(true);
    const g = run('j', 1, ['a']);
    live.track(g);
    live.faultDetected('j', 5);
    expect(live.forgetJob('j')).toBe(g);
    expect([live.hasRun('j'), live.takeFault('j'), live.launchOnce('j', 'RECOVERING:1')]).toEqual([false, undefined, true]);
  });

  test('draining: set by the agent, cleared when it rejoins or leaves', () => {
    const live = new LiveState();
    live.drain('a');
    expect(live.isDraining('a')).toBe(true);
    expect(live.clearDraining('a')).toBe(true);
    expect(live.isDraining('a')).toBe(false);
    expect(live.clearDraining('a')).toBe(false);
  });
});
