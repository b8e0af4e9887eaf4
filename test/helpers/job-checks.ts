/** Shared checks for fault tests: wait for states/steps, find trainer processes, compare schedules. */
import {execFileSync} from 'node:child_process';
import {expect} from '@jest/globals';
import {lrAt, tauAt} from '../../orchestrator/src/schedules';
import type {PythonAgent} from './python-agent';
import type {TestCoordinator} from './test-coordinator';
import {waitFor} from './wait';

/** Job events and the agents' output tails, for a failure message a person can act on. */
export function explain(c: TestCoordinator, jobId: string, agents: PythonAgent[]): string {
  const evs = c.api.events(jobId).map((e) => `${e.level} ${e.type}: ${e.message}`).join('\n');
  return `events:\n${evs}\n` + agents.map((a) => `--- ${a.agentId}:\n${a.output().slice(-2500)}`).join('\n');
}

export async function waitForState(c: TestCoordinator, jobId: string, state: string, agents: PythonAgent[], timeoutMs = 150_000): Promise<void> {
  try {
    await waitFor(`job ${state}`, () => {
      const j = c.api.getJob(jobId)!;
      if (j.state === 'FAILED' && state !== 'FAILED') throw new Error(`job FAILED: ${j.message}`);
      return j.state === state;
    }, timeoutMs, 200);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${explain(c, jobId, agents)}`);
  }
}

export async function waitForStep(c: TestCoordinator, jobId: string, step: number, agents: PythonAgent[], timeoutMs = 120_000): Promise<void> {
  try {
    await waitFor(`step >= ${step}`, () => {
      const j = c.api.getJob(jobId)!;
      if (j.state === 'FAILED' || j.state === 'SUCCEEDED') throw new Error(`job ended ${j.state} before step ${step}: ${j.message}`);
      return j.state === 'RUNNING' && j.step >= step;
    }, timeoutMs, 100);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${explain(c, jobId, agents)}`);
  }
}

/** Trainer processes an agent runs (its direct children). */
export function trainerPids(agent: PythonAgent): number[] {
  const out = execFileSync('ps', ['-eo', 'pid=,ppid=,args='], {encoding: 'utf8'});
  return out.split('\n').map((l) => l.trim().split(/\s+/)).filter((f) => Number(f[1]) === agent.child.pid && f.join(' ').includes('trainer'))
    .map((f) => Number(f[0]));
}

/** The job finished all K steps, and every step's LR and tau equal the uninterrupted schedule. */
export async function expectCompleteSchedule(c: TestCoordinator, jobId: string): Promise<void> {
  const view = c.api.getJob(jobId)!;
  const K = view.totalSteps;
  expect(view.state).toBe('SUCCEEDED');
  expect(view.step).toBe(K);
  await waitFor('a metric point for every step', () => {
    const steps = c.api.metrics(jobId).map((p) => p.step);
    if (steps.length !== K) throw new Error(`steps with a metric point: ${steps.join(',')}`);
    return true;
  }, 30_000);
  const s = view.schedule;
  c.api.metrics(jobId).forEach((p, k) => {
    expect(p.step).toBe(k);
    expect(p.lr).toBeCloseTo(lrAt(k, K, s.warmupSteps, s.peakLr), 9);
    expect(p.tau).toBeCloseTo(tauAt(k, K, s.tauBase, s.tauSchedule), 9);
  });
}
