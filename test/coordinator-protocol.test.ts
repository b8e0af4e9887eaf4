/**
 * The coordinator against protocol-level agents over real gRPC, real ZeroMQ telemetry and a real
 * SQLite store: two-phase assignment, gang scheduling, priority, cancel, tokens, metrics.
 */
import {afterEach, describe, expect, test} from '@jest/globals';
import {createHmac} from 'node:crypto';
import * as zmq from 'zeromq';
import {byol} from '../orchestrator/src/gen/proto';
import {specHash} from '../orchestrator/src/spec';
import {startTestCoordinator, tinySpec, TEST_TOKEN, type TestCoordinator} from './helpers/test-coordinator';
import {CMD, TS, TsAgent} from './helpers/ts-agent';
import {waitFor} from './helpers/wait';

let coord: TestCoordinator | null = null;
const agents: TsAgent[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) a.close();
  await coord?.cleanup();
  coord = null;
});

async function setup(n: number): Promise<[TestCoordinator, TsAgent[]]> {
  coord = await startTestCoordinator();
  const list = Array.from({length: n}, (_, i) => new TsAgent(coord!.grpcAddress, `agent-${i}`, TEST_TOKEN).connect());
  agents.push(...list);
  await waitFor('agents registered', () => coord!.api.workers().filter((w) => w.connected).length === n);
  return [coord, list];
}

/** Plays the two-phase rendezvous: host assignment to rank 0, then assignments with the address. */
async function rendezvous(group: TsAgent[], generation = 1): Promise<byol.v1.Assignment.$Properties[]> {
  const hostMsg = await group[0].nextAssign({host: true, withAddress: false, generation});
  const a0 = hostMsg.assign!;
  group[0].send({rendezvous: {jobId: a0.jobId, generation: Number(a0.generation), address: '127.0.0.1:29999'}});
  return Promise.all(group.map(async (ag) => (await ag.nextAssign({withAddress: true, generation})).assign!));
}

describe('coordinator over gRPC', () => {
  test('an agent without the right token is refused with UNAUTHENTICATED', async () => {
    const [c] = await setup(0);
    const bad = new TsAgent(c.grpcAddress, 'intruder', 'wrong-token').connect();
    agents.push(bad);
    const s = await waitFor('stream status', () => bad.status);
    expect(s.code).toBe(16); // UNAUTHENTICATED
    expect(c.api.workers().map((w) => w.agentId)).not.toContain('intruder');
  });

  test('a 2-rank job: QUEUED -> SCHEDULED -> RUNNING -> SUCCEEDED, metrics and checkpoints recorded', async () => {
    const [c, group] = await setup(2);
    const job = c.api.submit(tinySpec({workers: 2}));
    expect(job.state).toBe('QUEUED');
    const assigns = await rendezvous(group);
    expect(c.api.getJob(job.id)!.state).toBe('SCHEDULED');
    expect(assigns.map((a) => a.rank).sort()).toEqual([0, 1]);
    for (const a of assigns) {
      expect(Number(a.worldSize)).toBe(2);
      expect(a.rendezvousAddress).toBe('127.0.0.1:29999');
      const sch = a.schedule!;
      expect([Number(sch.totalSteps), sch.globalBatch, sch.microBatch, sch.accumulation]).toEqual([4, 8, 4, 1]);
      expect(JSON.parse(String(a.specJson)).metadata.name).toBe('tiny');
      expect(a.specHash).toBe(specHash(job.spec)); // the coordinator's hash travels; the worker never computes one
      expect(a.resumeCheckpoint).toBe('');
      expect(a.telemetryAddress).toBe(c.telemetryAddress);
    }
    expect(assigns.find((a) => a.rank === 0)!.hostRendezvous).toBe(true);

    group.forEach((g, r) => g.trainer(job.id, 1, r, TS.TRAINER_RUNNING));
    await waitFor('RUNNING', () => c.api.getJob(job.id)!.state === 'RUNNING');

    // Metrics over a real ZeroMQ PUSH, as trainers send them.
    const push = new zmq.Push({linger: 1000});
    push.connect(c.telemetryAddress);
    // Each rank signs with the key only its own assignment carries.
    const keyOf = (rank: number) => Buffer.from(assigns.find((a) => a.rank === rank)!.telemetryKey!);
    expect(keyOf(0).length).toBe(32);
    expect(keyOf(0).equals(keyOf(1))).toBe(false);
    for (let step = 0; step < 4; step++) {
      for (let rank = 0; rank < 2; rank++) {
        const frame = byol.v1.Metric.encode({
          jobId: job.id, generation: 1, rank, worldSize: 2, step, loss: 1 + rank, tau: 0.99, lr: 0.1 * step,
          stepTimeS: 0.5 + rank, dataTimeS: 0.01, imagesPerSec: 8, epoch: step / 4,
        }).finish();
        await push.send([frame, createHmac('sha256', keyOf(rank)).update(frame).digest()]);
      }
    }
    // A frame of a generation that does not exist is dropped.
    const stale = byol.v1.Metric.encode({jobId: job.id, generation: 7, rank: 0, worldSize: 2, step: 9, loss: 99}).finish();
    await push.send([stale, createHmac('sha256', keyOf(0)).update(stale).digest()]);
    const pts = await waitFor('4 aggregated metric points', () => {
      const m = c.api.metrics(job.id);
      return m.length === 4 ? m : null;
    });
    push.close();
    expect(pts.map((p) => p.step)).toEqual([0, 1, 2, 3]);
    expect(pts[2]).toMatchObject({loss: 1.5, imagesPerSec: 16, stepTimeS: 1.5, slowestRank: 1, ranks: 2, generation: 1});
    expect(pts[2].lr).toBeCloseTo(0.2, 12);
    const view = c.api.getJob(job.id)!;
    expect(view.loss).toBe(1.5);
    expect(view.imagesPerSec).toBe(16);
    expect(view.workers.map((w) => w.agentId).sort()).toEqual(['agent-0', 'agent-1']);
    const prom = await c.registry.metrics();
    expect(prom).toMatch(/byol_telemetry_frames_total\{outcome="stale_generation"\} 1/);
    expect(prom).toMatch(new RegExp(`byol_job_loss\\{job="${job.id}"\\} 1.5`));

    group[0].send({progress: {jobId: job.id, generation: 1, rank: 0, step: 2, epoch: 0.5}});
    group[0].send({checkpoint: {jobId: job.id, generation: 1, step: 2, ok: true, path: `${c.checkpointRoot}/${job.id}/step-000000002`, bytes: 10, sha256: 'ab'.repeat(32)}});
    await waitFor('checkpoint recorded', () => c.api.checkpoints(job.id).length === 1);
    expect(c.api.getJob(job.id)!.step).toBe(2);

    group.forEach((g, r) => g.trainer(job.id, 1, r, TS.TRAINER_SUCCEEDED, 4));
    await waitFor('SUCCEEDED', () => c.api.getJob(job.id)!.state === 'SUCCEEDED');
    const done = c.api.getJob(job.id)!;
    expect(done.step).toBe(4);
    expect(done.generations).toMatchObject([{generation: 1, worldSize: 2, startStep: 0, endStep: 4, endReason: 'completed'}]);
    expect(c.api.workers().every((w) => Object.keys(w.assigned).length === 0)).toBe(true);
    const types = c.api.events(job.id).map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(['submitted', 'state', 'generation', 'checkpoint']));
  });

  test('a second job waits while the first holds the devices; higher priority goes next', async () => {
    const [c, group] = await setup(2);
    const first = c.api.submit(tinySpec({name: 'first'}));
    await rendezvous(group);
    const low = c.api.submit(tinySpec({name: 'low', priority: 0}));
    const high = c.api.submit(tinySpec({name: 'high', priority: 5}));
    await new Promise((r) => setTimeout(r, 300));
    expect(c.api.getJob(low.id)!.state).toBe('QUEUED');
    expect(c.api.getJob(high.id)!.state).toBe('QUEUED');
    group.forEach((g, r) => g.trainer(first.id, 1, r, TS.TRAINER_SUCCEEDED, 4));
    const next = await rendezvous(group);
    expect(next[0].jobId).toBe(high.id);
    expect(c.api.getJob(low.id)!.state).toBe('QUEUED');
  });

  test('cancel aborts the trainers and frees the devices', async () => {
    const [c, group] = await setup(2);
    for (const g of group) g.autoAbort = false;
    const job = c.api.submit(tinySpec());
    await rendezvous(group);
    group.forEach((g, r) => g.trainer(job.id, 1, r, TS.TRAINER_RUNNING));
    await waitFor('RUNNING', () => c.api.getJob(job.id)!.state === 'RUNNING');
    const v = c.api.cancel(job.id);
    expect(v.state).toBe('CANCELLED');
    for (const g of group) {
      const cmd = (await g.nextCommand(CMD.COMMAND_ABORT)).command!;
      expect([cmd.jobId, Number(cmd.generation)]).toEqual([job.id, 1]);
    }
    expect(() => c.api.cancel(job.id)).toThrow(/already CANCELLED/);
    expect(() => c.api.cancel('nope')).toThrow(/not found/);
    // A device is reused only once its agent reports the aborted trainer ended (the Python agent
    // refuses a device that still runs one).
    expect(c.api.workers().every((w) => Object.keys(w.assigned).length === 0)).toBe(true);
    const next = c.api.submit(tinySpec({name: 'next'}));
    await new Promise((r) => setTimeout(r, 300));
    expect(group.some((g) => g.inbox.some((m) => m.assign))).toBe(false);
    group.forEach((g, r) => g.trainer(job.id, 1, r, TS.TRAINER_ABORTED, 0, -9, 'killed'));
    expect((await rendezvous(group))[0].jobId).toBe(next.id);
  });

  test('a bad spec is refused and nothing is stored', async () => {
    const [c] = await setup(0);
    const doc = tinySpec() as any;
    doc.spec.optimizer.baseLr = -1;
    expect(() => c.api.submit(doc)).toThrow(/spec\.optimizer\.baseLr/);
    const three = tinySpec({workers: 3}) as any; // 3 does not divide B = 8
    expect(() => c.api.submit(three)).toThrow(/spec\.resources\.workers/);
    expect(c.api.listJobs()).toEqual([]);
  });
});
