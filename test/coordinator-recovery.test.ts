/**
 * Recovery in the coordinator, driven by protocol-level agents over real gRPC: agent loss,
 * heartbeat timeout, preemption, bad checkpoints, generation fencing, coordinator restart.
 */
import {afterEach, describe, expect, test} from '@jest/globals';
import {rmSync} from 'node:fs';
import {join} from 'node:path';
import {startTestCoordinator, tinySpec, TEST_TOKEN, type TestCoordinator} from './helpers/test-coordinator';
import {CMD, TS, TsAgent} from './helpers/ts-agent';
import {waitFor} from './helpers/wait';
import type {CoordinatorOptions} from '../orchestrator/src/coordinator/start';

let coords: TestCoordinator[] = [];
const agents: TsAgent[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) a.close();
  for (const c of coords.reverse()) await c.cleanup();
  coords = [];
});

async function setup(n: number, over: Partial<CoordinatorOptions> = {}): Promise<[TestCoordinator, TsAgent[]]> {
  const c = await startTestCoordinator(over);
  coords.push(c);
  const list = Array.from({length: n}, (_, i) => addAgent(c, `agent-${i}`));
  await waitFor('agents registered', () => c.api.workers().filter((w) => w.connected).length === n);
  return [c, list];
}

function addAgent(c: TestCoordinator, id: string): TsAgent {
  const a = new TsAgent(c.grpcAddress, id, TEST_TOKEN).connect();
  agents.push(a);
  return a;
}

async function rendezvous(group: TsAgent[], generation: number) {
  const a0 = (await group[0].nextAssign({host: true, withAddress: false, generation})).assign!;
  group[0].send({rendezvous: {jobId: a0.jobId, generation, address: '127.0.0.1:29999'}});
  return Promise.all(group.map(async (ag) => (await ag.nextAssign({withAddress: true, generation})).assign!));
}

function checkpoint(c: TestCoordinator, ag: TsAgent, jobId: string, generation: number, step: number): void {
  const path = join(c.checkpointRoot, jobId, `step-${String(step).padStart(9, '0')}`);
  ag.send({checkpoint: {jobId, generation, step, ok: true, path, bytes: 10, sha256: String(step % 10).repeat(64)}});
}

describe('coordinator recovery', () => {
  test('agent lost: the next generation runs on the agent left (minWorkers 1), same B and K, from the last checkpoint', async () => {
    const [c, [a0, a1]] = await setup(2);
    const job = c.api.submit(tinySpec({workers: 2, minWorkers: 1, epochs: 2}));
    await rendezvous([a0, a1], 1);
    a0.trainer(job.id, 1, 0, TS.TRAINER_RUNNING);
    checkpoint(c, a0, job.id, 1, 2);
    a0.send({progress: {jobId: job.id, generation: 1, rank: 0, step: 3, epoch: 0.75}});
    await waitFor('checkpoint and progress', () => c.api.getJob(job.id)!.step === 3 && c.api.checkpoints(job.id).length === 1);

    a1.close(); // the stream closes: agent lost
    const abort = (await a0.nextCommand(CMD.COMMAND_ABORT)).command!;
    expect(Number(abort.generation)).toBe(1);
    const [g2] = await rendezvous([a0], 2);
    expect(Number(g2.worldSize)).toBe(1);
    expect(g2.resumeCheckpoint).toBe(join(c.checkpointRoot, job.id, 'step-000000002'));
    const s = g2.schedule!;
    expect([Number(s.totalSteps), s.globalBatch, s.microBatch, s.accumulation]).toEqual([8, 8, 8, 1]);

    // A report of the fenced generation changes nothing.
    a0.trainer(job.id, 1, 0, TS.TRAINER_SUCCEEDED, 8);
    a0.send({progress: {jobId: job.id, generation: 2, rank: 0, step: 3, epoch: 0.75}});
    await waitFor('RUNNING again', () => c.api.getJob(job.id)!.state === 'RUNNING');
    a0.trainer(job.id, 2, 0, TS.TRAINER_SUCCEEDED, 8);
    await waitFor('SUCCEEDED', () => c.api.getJob(job.id)!.state === 'SUCCEEDED');
    const gens = c.api.getJob(job.id)!.generations;
    expect(gens).toMatchObject([
      {generation: 1, worldSize: 2, startStep: 0, endStep: 3, endReason: 'worker-lost', stepsLost: 1},
      {generation: 2, worldSize: 1, startStep: 2, endStep: 8, endReason: 'completed', stepsLost: 0},
    ]);
    expect(gens[1].recoverySeconds).toBeGreaterThanOrEqual(0);
  });

  test('elastic: a job shrunk to 1 rank grows back to 2 at its next checkpoint, with no step lost', async () => {
    const [c, [a0, a1]] = await setup(2);
    const job = c.api.submit(tinySpec({workers: 2, minWorkers: 1, epochs: 2}));
    await rendezvous([a0, a1], 1);
    a1.close(); // lost: the job goes on with one rank
    await a0.nextCommand(CMD.COMMAND_ABORT);
    await rendezvous([a0], 2);
    a0.send({progress: {jobId: job.id, generation: 2, rank: 0, step: 1, epoch: 0.25}});
    await waitFor('RUNNING on 1 rank', () => c.api.getJob(job.id)!.state === 'RUNNING');

    const a2 = addAgent(c, 'agent-2'); // capacity returns
    await waitFor('agent-2 registered', () => c.api.workers().some((w) => w.agentId === 'agent-2' && w.connected));
    checkpoint(c, a0, job.id, 2, 4); // a checkpoint boundary: the group stops at the next step to grow
    const stop = (await a0.nextCommand(CMD.COMMAND_STOP_AT_STEP)).command!;
    expect(Number(stop.generation)).toBe(2);
    checkpoint(c, a0, job.id, 2, 5);
    a0.trainer(job.id, 2, 0, TS.TRAINER_PREEMPTED, 5);
    const assigns = await rendezvous([a0, a2], 3);
    expect(assigns.map((a) => Number(a.worldSize))).toEqual([2, 2]);
    expect(assigns[0].resumeCheckpoint).toBe(join(c.checkpointRoot, job.id, 'step-000000005'));
    expect([assigns[0].schedule!.globalBatch, assigns[0].schedule!.microBatch]).toEqual([8, 4]);
    const gens = c.api.getJob(job.id)!.generations;
    expect(gens[1]).toMatchObject({generation: 2, worldSize: 1, endStep: 5, endReason: 'grow', stepsLost: 0});
    expect(c.api.events(job.id).some((e) => e.type === 'elastic' && /grow from 1 to 2/.test(e.message))).toBe(true);
  });

  test('a hung agent (no heartbeats) is lost after heartbeatTimeoutMs; with minWorkers 2 the job WAITs for a new agent', async () => {
    const [c, [a0, a1]] = await setup(2, {heartbeatTimeoutMs: 600});
    const job = c.api.submit(tinySpec({workers: 2}));
    await rendezvous([a0, a1], 1);
    a1.stopHeartbeats();
    await waitFor('WAITING', () => c.api.getJob(job.id)!.state === 'WAITING', 5000);
    expect(c.api.getJob(job.id)!.message).toMatch(/minWorkers/);
    const a2 = addAgent(c, 'agent-2');
    const assigns = await rendezvous([a0, a2], 2);
    expect(assigns.map((a) => Number(a.worldSize))).toEqual([2, 2]);
    expect(c.api.getJob(job.id)!.generations[0]).toMatchObject({endReason: 'worker-lost'});
  });

  test('all ranks PREEMPTED after a checkpoint: resume at that step (0 steps lost), never on the preempted agent', async () => {
    const [c, [a0, a1, a2]] = await setup(3);
    const job = c.api.submit(tinySpec({workers: 2, minWorkers: 1, epochs: 2}));
    await rendezvous([a0, a1], 1);
    a1.send({event: {jobId: job.id, generation: 1, level: 'warn', message: 'SIGTERM received, stopping at the next step', draining: true}});
    // The preempted agent's rank stops and the agent leaves before rank 0 has reported its save:
    // the generation waits for rank 0 instead of ending as a worker loss.
    a1.trainer(job.id, 1, 1, TS.TRAINER_PREEMPTED, 5, 75);
    await new Promise((r) => setTimeout(r, 100));
    a1.close();
    await waitFor('agent-1 gone', () => !c.api.workers().some((w) => w.agentId === 'agent-1'));
    await new Promise((r) => setTimeout(r, 200));
    expect(c.api.getJob(job.id)!.state).toBe('SCHEDULED');
    checkpoint(c, a0, job.id, 1, 5);
    a0.trainer(job.id, 1, 0, TS.TRAINER_PREEMPTED, 5, 75);
    const g2 = await rendezvous([a0, a2], 2);
    expect(g2.map((a) => a.resumeCheckpoint)).toEqual([0, 1].map(() => join(c.checkpointRoot, job.id, 'step-000000005')));
    a0.send({progress: {jobId: job.id, generation: 2, rank: 0, step: 6, epoch: 1.5}});
    await waitFor('recovery time recorded', () => c.api.getJob(job.id)!.generations[1]?.recoverySeconds !== null);
    expect(c.api.getJob(job.id)!.generations[0]).toMatchObject({endStep: 5, endReason: 'preempted', stepsLost: 0});
    expect(c.api.events(job.id).some((e) => e.type === 'agent' && /SIGTERM/.test(e.message))).toBe(true);
  });

  test('a checkpoint that fails to load is marked bad and the previous good one is used', async () => {
    const [c, [a0]] = await setup(1);
    const job = c.api.submit(tinySpec({workers: 1, epochs: 2}));
    await rendezvous([a0], 1);
    checkpoint(c, a0, job.id, 1, 2);
    checkpoint(c, a0, job.id, 1, 4);
    await waitFor('2 checkpoints', () => c.api.checkpoints(job.id).length === 2);
    a0.trainer(job.id, 1, 0, TS.TRAINER_FAILED, 5, -9, 'killed by SIGKILL');
    const [g2] = await rendezvous([a0], 2);
    expect(g2.resumeCheckpoint).toMatch(/step-000000004$/);
    a0.trainer(job.id, 2, 0, TS.TRAINER_FAILED, 0, 2, 'checkpoint step-000000004: sha256 mismatch in model.pt');
    const [g3] = await rendezvous([a0], 3);
    expect(g3.resumeCheckpoint).toMatch(/step-000000002$/);
    expect(c.api.checkpoints(job.id).map((k) => [k.step, k.state])).toEqual([[2, 'ok'], [4, 'bad']]);
    expect(c.api.getJob(job.id)!.generations.map((g) => g.endReason)).toEqual(['trainer-failed', 'bad-checkpoint', null]);
  });

  test('two faults in a row: recoverySeconds runs from the first fault to the next progress', async () => {
    const [c, [a0]] = await setup(1);
    const job = c.api.submit(tinySpec({workers: 1, epochs: 2}));
    await rendezvous([a0], 1);
    a0.send({progress: {jobId: job.id, generation: 1, rank: 0, step: 1, epoch: 0.25}});
    await waitFor('RUNNING', () => c.api.getJob(job.id)!.state === 'RUNNING');
    const firstFault = Date.now();
    a0.trainer(job.id, 1, 0, TS.TRAINER_FAILED, 1, -9, 'killed by SIGKILL');
    await rendezvous([a0], 2);
    await new Promise((r) => setTimeout(r, 1500));
    a0.trainer(job.id, 2, 0, TS.TRAINER_FAILED, 0, -9, 'killed by SIGKILL'); // down again before any progress
    await rendezvous([a0], 3);
    a0.send({progress: {jobId: job.id, generation: 3, rank: 0, step: 1, epoch: 0.25}});
    const g3 = await waitFor('recovery recorded', () => c.api.getJob(job.id)!.generations[2]?.recoverySeconds ?? null);
    expect(g3).toBeGreaterThanOrEqual(1.5);
    expect(g3).toBeLessThanOrEqual((Date.now() - firstFault) / 1000);
  });

  test('bad input (exit 2 without a checkpoint) fails the job instead of looping', async () => {
    const [c, [a0]] = await setup(1);
    const job = c.api.submit(tinySpec({workers: 1}));
    await rendezvous([a0], 1);
    a0.trainer(job.id, 1, 0, TS.TRAINER_FAILED, 0, 2, 'spec.data.path: no train_images.npy');
    await waitFor('FAILED', () => c.api.getJob(job.id)!.state === 'FAILED');
    expect(c.api.getJob(job.id)!.message).toMatch(/train_images/);
  });

  test('coordinator restart: agents reconnect listing their trainers and are re-attached; the job finishes', async () => {
    const [c1, [a0, a1]] = await setup(2);
    const job = c1.api.submit(tinySpec({workers: 2, epochs: 2}));
    await rendezvous([a0, a1], 1);
    a0.send({progress: {jobId: job.id, generation: 1, rank: 0, step: 3, epoch: 0.75}});
    await waitFor('step 3', () => c1.api.getJob(job.id)!.step === 3);
    await c1.close();
    a0.close(); a1.close();
    coords = [];
    const c2 = await startTestCoordinator({}, c1.dir);
    coords.push(c2);
    expect(c2.api.getJob(job.id)!).toMatchObject({state: 'RUNNING', generation: 1, step: 3});
    const running = (rank: number) => [{jobId: job.id, generation: 1, rank, deviceId: 'cpu:0', step: 4}];
    // The same agents reconnect: they present the session keys the first coordinator gave them.
    const b0 = new TsAgent(c2.grpcAddress, 'agent-0', TEST_TOKEN).withSessionKey(a0.sessionKey).connect(running(0));
    const b1 = new TsAgent(c2.grpcAddress, 'agent-1', TEST_TOKEN).withSessionKey(a1.sessionKey).connect(running(1));
    // A trainer of a generation that is not current is aborted.
    const stray = new TsAgent(c2.grpcAddress, 'agent-9', TEST_TOKEN).connect([{jobId: job.id, generation: 0, rank: 0, deviceId: 'cpu:0', step: 1}]);
    agents.push(b0, b1, stray);
    expect(Number((await stray.nextCommand(CMD.COMMAND_ABORT)).command!.generation)).toBe(0);
    await waitFor('re-attached', () => c2.api.workers().filter((w) => Object.keys(w.assigned).length > 0).length === 2);
    b0.trainer(job.id, 1, 0, TS.TRAINER_SUCCEEDED, 8);
    b1.trainer(job.id, 1, 1, TS.TRAINER_SUCCEEDED, 8);
    await waitFor('SUCCEEDED', () => c2.api.getJob(job.id)!.state === 'SUCCEEDED');
    expect(c2.api.getJob(job.id)!.generations).toMatchObject([{generation: 1, endReason: 'completed', endStep: 8}]);
    await c2.cleanup();
    coords = [];
    rmSync(c1.dir, {recursive: true, force: true});
  });
});
