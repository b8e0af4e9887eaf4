/**
 * Coordinator restart with real Python agents and trainers (docs/architecture.md §8): training goes on while
 * the coordinator is down; agents reconnect and list their trainers; the job finishes in the same
 * generation with the uninterrupted schedule.
 */
import {afterEach, describe, expect, test} from '@jest/globals';
import {rmSync} from 'node:fs';
import {lrAt, tauAt} from '../orchestrator/src/schedules';
import {waitForState, waitForStep} from './helpers/job-checks';
import {killAllAgents, spawnPythonAgent} from './helpers/python-agent';
import {startTestCoordinator, tinySpec, TEST_TOKEN} from './helpers/test-coordinator';
import {sleep, waitFor} from './helpers/wait';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  await killAllAgents();
  for (const f of cleanups.splice(0).reverse()) await f();
});

describe('coordinator restart', () => {
  test('agents re-attach to a restarted coordinator and the job finishes without a new generation', async () => {
    const c1 = await startTestCoordinator();
    cleanups.push(() => rmSync(c1.dir, {recursive: true, force: true}));
    const agents = [0, 1].map((i) => spawnPythonAgent(c1.grpcAddress, `py-${i}`, TEST_TOKEN));
    const job = c1.api.submit(tinySpec({workers: 2, numSamples: 64, epochs: 2, everySteps: 4}));
    const K = job.totalSteps;
    expect(K).toBe(16);
    await waitForStep(c1, job.id, 2, agents);
    const grpcPort = Number(c1.grpcAddress.split(':').pop());
    const telemetryPort = Number(c1.telemetryAddress.split(':').pop());
    await c1.close();
    await sleep(1000);
    const c2 = await startTestCoordinator({grpcPort, telemetryPort}, c1.dir);
    cleanups.push(() => c2.close());
    await waitFor('agents back', () => c2.api.workers().filter((w) => w.connected).length === 2, 30_000);
    await waitForState(c2, job.id, 'SUCCEEDED', agents);
    const view = c2.api.getJob(job.id)!;
    expect(view.step).toBe(K);
    expect(view.generations).toMatchObject([{generation: 1, worldSize: 2, endReason: 'completed', endStep: K}]);
    // Frames sent while no coordinator listened are dropped by the trainers (never block training);
    // every point that arrived carries the uninterrupted schedule, and the last steps arrived.
    const pts = c2.api.metrics(job.id);
    const s = view.schedule;
    expect(pts[pts.length - 1].step).toBe(K - 1);
    for (const p of pts) {
      expect(p.lr).toBeCloseTo(lrAt(p.step, K, s.warmupSteps, s.peakLr), 9);
      expect(p.tau).toBeCloseTo(tauAt(p.step, K, s.tauBase, s.tauSchedule), 9);
    }
  }, 240_000);
});
