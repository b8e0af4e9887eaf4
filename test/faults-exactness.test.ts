/**
 * Exactness under preemption (issue 4): a job interrupted by a graceful preemption (SIGTERM to one of its
 * agents) ends with the same parameters as the same job uninterrupted. A spare agent keeps W = 2, so the
 * resumed generation computes exactly what the first would have.
 */
import {afterEach, describe, expect, test} from '@jest/globals';
import {execFileSync} from 'node:child_process';
import {waitForState, waitForStep} from './helpers/job-checks';
import {killAllAgents, spawnPythonAgent, type PythonAgent} from './helpers/python-agent';
import {startTestCoordinator, tinySpec, TEST_TOKEN, type TestCoordinator} from './helpers/test-coordinator';
import {PYTHON_BIN, REPO_ROOT} from './helpers/temp';

const coords: TestCoordinator[] = [];
afterEach(async () => {
  await killAllAgents();
  for (const c of coords.splice(0)) await c.cleanup();
});

const SPEC = () => tinySpec({workers: 2, minWorkers: 2, numSamples: 48, epochs: 2, everySteps: 3}); // K = 12

async function runJob(agentCount: number, interrupt: boolean): Promise<{checkpoint: string; reasons: string[]}> {
  const c = await startTestCoordinator();
  coords.push(c);
  const agents: PythonAgent[] = Array.from({length: agentCount}, (_, i) => spawnPythonAgent(c.grpcAddress, `ex-${i}`, TEST_TOKEN));
  const jobId = c.api.submit(SPEC()).id;
  if (interrupt) {
    await waitForStep(c, jobId, 4, agents);
    const victim = c.api.getJob(jobId)!.workers.find((w) => w.rank === 1)!.agentId;
    agents.find((a) => a.agentId === victim)!.child.kill('SIGTERM');
  }
  await waitForState(c, jobId, 'SUCCEEDED', agents);
  const last = c.api.checkpoints(jobId).filter((k) => k.state === 'ok').pop()!;
  expect(last.step).toBe(12);
  return {checkpoint: last.path, reasons: c.api.getJob(jobId)!.generations.map((g) => g.endReason ?? '')};
}

/** Largest absolute difference over every tensor of the two checkpoints' model states (online, target, predictor). */
function maxParamDiff(a: string, b: string): number {
  const code = [
    'import sys, torch',
    'from byol_worker.core import checkpoint as ck',
    'x, y = ck.load(sys.argv[1])["model"], ck.load(sys.argv[2])["model"]',
    'assert x.keys() == y.keys()',
    'print(max((x[k].double() - y[k].double()).abs().max().item() for k in x if x[k].is_floating_point()))',
  ].join('\n');
  return Number(execFileSync(PYTHON_BIN, ['-c', code, a, b], {cwd: REPO_ROOT}).toString().trim());
}

describe('exactness', () => {
  test('a gracefully preempted job ends with the same parameters as the uninterrupted one', async () => {
    const straight = await runJob(2, false);
    const interrupted = await runJob(3, true);
    expect(straight.reasons).toEqual(['completed']);
    expect(interrupted.reasons).toEqual(['preempted', 'completed']);
    expect(maxParamDiff(straight.checkpoint, interrupted.checkpoint)).toBeLessThan(1e-5);
  }, 300_000);
});
