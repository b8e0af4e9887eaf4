/**
 * Faults with real Python agents and gloo trainers (docs/architecture.md §8): preemption, a killed trainer,
 * a corrupt checkpoint, an agent gone for good. Each run must end at step K with the LR and tau of
 * the uninterrupted schedule.
 */
import {afterEach, describe, expect, test} from '@jest/globals';
import {openSync, readdirSync, writeSync, closeSync} from 'node:fs';
import {join} from 'node:path';
import {expectCompleteSchedule, trainerPids, waitForState, waitForStep, explain} from './helpers/job-checks';
import {killAllAgents, spawnPythonAgent, type PythonAgent} from './helpers/python-agent';
import {startTestCoordinator, tinySpec, TEST_TOKEN, type TestCoordinator} from './helpers/test-coordinator';
import {waitFor} from './helpers/wait';

let coord: TestCoordinator | null = null;
afterEach(async () => {
  await killAllAgents();
  await coord?.cleanup();
  coord = null;
});

/** K = 12 steps (48 samples, B 8, 2 epochs), a checkpoint every 3 steps. */
async function startJob(minWorkers: number): Promise<{c: TestCoordinator; agents: PythonAgent[]; jobId: string}> {
  coord = await startTestCoordinator();
  const c = coord;
  const agents = [0, 1].map((i) => spawnPythonAgent(c.grpcAddress, `py-${i}`, TEST_TOKEN));
  const job = c.api.submit(tinySpec({workers: 2, minWorkers, numSamples: 48, epochs: 2, everySteps: 3}));
  expect(job.totalSteps).toBe(12);
  return {c, agents, jobId: job.id};
}

describe('faults with real agents', () => {
  test('SIGTERM to one of 2 agents: all ranks stop at one step after a checkpoint; resume there, 0 steps lost', async () => {
    const {c, agents, jobId} = await startJob(1);
    await waitForStep(c, jobId, 2, agents);
    agents[1].child.kill('SIGTERM');
    const {code} = await agents[1].exited;
    expect(code).toBe(0);
    await waitForState(c, jobId, 'SUCCEEDED', agents);
    await expectCompleteSchedule(c, jobId);
    const gens = c.api.getJob(jobId)!.generations;
    expect(gens.length).toBe(2);
    expect(gens[0]).toMatchObject({worldSize: 2, endReason: 'preempted', stepsLost: 0});
    expect(gens[1]).toMatchObject({worldSize: 1, startStep: gens[0].endStep, endReason: 'completed', agents: ['py-0']});
    expect(gens[1].recoverySeconds).toBeGreaterThan(0);
  }, 240_000);

  test('SIGKILL to a trainer: resume from the newest checkpoint registered before the kill', async () => {
    const {c, agents, jobId} = await startJob(2);
    await waitForStep(c, jobId, 4, agents);
    // Checkpoints are written and reported in the background: wait until one is registered, so the kill tests
    // the resume and not how fast a loaded machine reports (a report from an ended generation is dropped).
    const registered = () => c.api.checkpoints(jobId).filter((k) => k.state === 'ok').map((k) => k.step);
    await waitFor('a registered checkpoint', () => registered().length > 0, 120_000, 50)
      .catch((err) => { throw new Error(`${err.message}\n${explain(c, jobId, agents)}`); });
    const newest = Math.max(...registered());
    const [pid] = trainerPids(agents[1]);
    expect(pid).toBeGreaterThan(0);
    process.kill(pid, 'SIGKILL');
    await waitForState(c, jobId, 'SUCCEEDED', agents);
    await expectCompleteSchedule(c, jobId);
    const gens = c.api.getJob(jobId)!.generations;
    expect(gens[0].endReason).toMatch(/trainer-failed|worker-lost/);
    expect(gens[1].startStep).toBeGreaterThanOrEqual(newest);
    expect(gens[0].stepsLost).toBe(gens[0].endStep! - gens[1].startStep);
    expect(gens[gens.length - 1]).toMatchObject({worldSize: 2, endReason: 'completed'});
  }, 240_000);

  test('a corrupt newest checkpoint: marked bad, the previous good one is used', async () => {
    const {c, agents, jobId} = await startJob(2);
    await waitFor('two good checkpoints', () => c.api.checkpoints(jobId).filter((k) => k.state === 'ok').length >= 2, 120_000, 100)
      .catch((err) => { throw new Error(`${err.message}\n${explain(c, jobId, agents)}`); });
    const [pid] = trainerPids(agents[0]); // rank 0 writes checkpoints; with it dead no newer one lands
    process.kill(pid, 'SIGKILL');
    const ok = c.api.checkpoints(jobId).filter((k) => k.state === 'ok');
    const newest = ok[ok.length - 1];
    const file = readdirSync(newest.path).find((f) => f.startsWith('model'))!;
    const fd = openSync(join(newest.path, file), 'r+');
    writeSync(fd, Buffer.from('corrupted!'), 0, 10, 64);
    closeSync(fd);
    await waitForState(c, jobId, 'SUCCEEDED', agents, 60_000);
    await expectCompleteSchedule(c, jobId);
    // Marked bad when it failed to load; the rerun later saved a good one at the same step again.
    const why = explain(c, jobId, agents);
    expect({marked: c.api.events(jobId).some((e) => e.type === 'checkpoint' && new RegExp(`step ${newest.step} failed to load and is marked bad`).test(e.message)), why})
      .toEqual({marked: true, why});
    const gens = c.api.getJob(jobId)!.generations;
    expect(gens.map((g) => g.endReason)).toContain('bad-checkpoint');
    const after = gens[gens.findIndex((g) => g.endReason === 'bad-checkpoint') + 1];
    expect(after.startStep).toBeLessThan(newest.step);
  }, 240_000);

  test('minWorkers 1 of 2, an agent killed for good: finishes on one rank with the same global batch', async () => {
    const {c, agents, jobId} = await startJob(1);
    await waitForStep(c, jobId, 2, agents);
    const trainers = trainerPids(agents[1]);
    agents[1].kill();
    for (const pid of trainers) process.kill(pid, 'SIGKILL'); // the node is gone, its trainers with it
    await waitForState(c, jobId, 'SUCCEEDED', agents);
    await expectCompleteSchedule(c, jobId);
    const gens = c.api.getJob(jobId)!.generations;
    const last = gens[gens.length - 1];
    expect(last).toMatchObject({worldSize: 1, agents: ['py-0'], endReason: 'completed'});
    expect(c.api.getJob(jobId)!.schedule.globalBatch).toBe(8);
    expect(c.api.events(jobId).some((e) => /micro-batch 8 x 1 accumulation per rank, global batch 8/.test(e.message))).toBe(true);
  }, 240_000);
});
