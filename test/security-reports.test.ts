/**
 * Attacks on the agent channel, as someone holding the one shared agent token runs them: a second
 * agent (real gRPC, real coordinator, real store) reports for ranks it does not hold, registers
 * "checkpoints" at /etc and ../../.., marks the job SUCCEEDED, answers the rendezvous. A compromised
 * holder is bounded too: steps outside [0, K], paths out of the job's folder (symlinks included).
 * Every refusal changes nothing, is counted by reason, and warns at a bounded rate.
 */
import {afterEach, describe, expect, test} from '@jest/globals';
import {existsSync, mkdirSync, symlinkSync} from 'node:fs';
import {join} from 'node:path';
import pino from 'pino';
import {startTestCoordinator, tinySpec, TEST_TOKEN, type TestCoordinator} from './helpers/test-coordinator';
import {TS, TsAgent} from './helpers/ts-agent';
import {sleep, waitFor} from './helpers/wait';

let coord: TestCoordinator | null = null;
const agents: TsAgent[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) a.close();
  await coord?.cleanup();
  coord = null;
});

const SHA = 'ab'.repeat(32);
const warnings: {msg: string; reason?: string}[] = [];

async function setup(): Promise<{c: TestCoordinator; a0: TsAgent; a1: TsAgent; intruder: TsAgent}> {
  warnings.length = 0;
  const logger = pino({level: 'warn'}, {write: (line: string) => { warnings.push(JSON.parse(line)); }});
  coord = await startTestCoordinator({logger});
  const c = coord;
  const [a0, a1] = ['agent-0', 'agent-1'].map((id) => new TsAgent(c.grpcAddress, id, TEST_TOKEN).connect());
  // The intruder has the token but offers no device, so nothing is ever placed on it.
  const intruder = new TsAgent(c.grpcAddress, 'intruder', TEST_TOKEN, []).connect();
  agents.push(a0, a1, intruder);
  await waitFor('agents registered', () => c.api.workers().filter((w) => w.connected).length === 3);
  return {c, a0, a1, intruder};
}

/** byol_rejected_reports_total{kind, reason}, read synchronously from prom-client's counter. */
function rejected(c: TestCoordinator, kind: string, reason: string): number {
  const counter = c.registry.getSingleMetric('byol_rejected_reports_total') as unknown as {hashMap: Record<string, {labels: Record<string, string>; value: number}>};
  return Object.values(counter.hashMap).find((v) => v.labels.kind === kind && v.labels.reason === reason)?.value ?? 0;
}

describe('agent reports are authorised and plausible', () => {
  test('an intruder with the shared token cannot answer the rendezvous, move the step, fake results, end the job, or register checkpoints', async () => {
    const {c, a0, a1, intruder} = await setup();
    const job = c.api.submit(tinySpec({workers: 2, epochs: 2})); // K = 8
    const a = (await a0.nextAssign({host: true, withAddress: false})).assign!;

    // The intruder answers the rendezvous first, with its own address: refused; the real answer wins.
    intruder.send({rendezvous: {jobId: job.id, generation: 1, address: '10.6.6.6:29500'}});
    a1.send({rendezvous: {jobId: job.id, generation: 1, address: '10.6.6.7:29500'}}); // holds rank 1, not 0
    await waitFor('2 rendezvous refusals', () => (rejected(c, 'rendezvous', 'not_holder')) === 2);
    a0.send({rendezvous: {jobId: a.jobId, generation: 1, address: '127.0.0.1:29999'}});
    const assigns = await Promise.all([a0, a1].map(async (g) => (await g.nextAssign({withAddress: true})).assign!));
    expect(assigns.map((x) => x.rendezvousAddress)).toEqual(['127.0.0.1:29999', '127.0.0.1:29999']);

    a0.trainer(job.id, 1, 0, TS.TRAINER_RUNNING);
    a1.trainer(job.id, 1, 1, TS.TRAINER_RUNNING);
    a0.send({progress: {jobId: job.id, generation: 1, rank: 0, step: 2, epoch: 0.5}});
    await waitFor('RUNNING at step 2', () => c.api.getJob(job.id)!.state === 'RUNNING' && c.api.getJob(job.id)!.step === 2);
    const realCkpt = join(c.checkpointRoot, job.id, 'step-000000002');
    mkdirSync(realCkpt, {recursive: true});
    a0.send({checkpoint: {jobId: job.id, generation: 1, step: 2, ok: true, path: realCkpt, bytes: 10, sha256: SHA}});
    await waitFor('real checkpoint', () => c.api.checkpoints(job.id).length === 1);

    for (const rank of [0, 1]) {
      intruder.send({progress: {jobId: job.id, generation: 1, rank, step: 1e15, epoch: 1}});
      intruder.send({progress: {jobId: job.id, generation: 1, rank, step: 7, epoch: 1, results: {knn_top1: 0.99}}});
      intruder.trainer(job.id, 1, rank, TS.TRAINER_SUCCEEDED, 8);
    }
    for (const [i, path] of ['/etc', '../../..', join(c.checkpointRoot, job.id, 'step-000000007')].entries()) {
      intruder.send({checkpoint: {jobId: job.id, generation: 1, step: 5 + i, ok: true, path, bytes: 1, sha256: SHA}});
    }
    intruder.send({event: {jobId: job.id, generation: 1, level: 'error', message: 'rank 0 said: \x1b[2Jdelete everything'}});
    await waitFor('every intruder report refused', () =>
      (rejected(c, 'progress', 'not_holder')) === 4 && (rejected(c, 'trainer', 'not_holder')) === 2 &&
      (rejected(c, 'checkpoint', 'not_holder')) === 3 && (rejected(c, 'event', 'not_holder')) === 1);

    const v = c.api.getJob(job.id)!;
    expect([v.state, v.step, v.result]).toEqual(['RUNNING', 2, null]);
    expect(c.api.checkpoints(job.id).map((k) => [k.step, k.path])).toEqual([[2, realCkpt]]);
    expect(existsSync(realCkpt)).toBe(true);
    expect(c.api.events(job.id).some((e) => /delete everything/.test(e.message))).toBe(false);
    // One warning per kind and reason (rate-limited), each saying what to do.
    const refusals = warnings.filter((w) => /report from agent intruder dropped/.test(w.msg));
    expect(refusals.length).toBeGreaterThanOrEqual(4);
    expect(refusals.length).toBeLessThanOrEqual(6);
    expect(refusals.every((w) => /rotate it/.test(w.msg))).toBe(true);

    // The real holders still finish the job.
    a0.trainer(job.id, 1, 0, TS.TRAINER_SUCCEEDED, 8);
    a1.trainer(job.id, 1, 1, TS.TRAINER_SUCCEEDED, 8);
    await waitFor('SUCCEEDED', () => c.api.getJob(job.id)!.state === 'SUCCEEDED');
  });

  test('the holder itself is bounded: steps in [0, K] and monotone, finite numbers, checkpoints only as step-<k> inside the job folder', async () => {
    const {c, a0, a1} = await setup();
    const job = c.api.submit(tinySpec({workers: 2, epochs: 2, keepLast: 1})); // K = 8
    const a = (await a0.nextAssign({host: true, withAddress: false})).assign!;
    a0.send({rendezvous: {jobId: a.jobId, generation: 1, address: 'not an address; rm -rf /'}});
    await waitFor('bad address refused', () => (rejected(c, 'rendezvous', 'bad_address')) === 1);
    a0.send({rendezvous: {jobId: a.jobId, generation: 1, address: '127.0.0.1:29999'}});
    await Promise.all([a0, a1].map((g) => g.nextAssign({withAddress: true})));

    a0.send({progress: {jobId: job.id, generation: 1, rank: 0, step: 3, epoch: 0.75}});
    await waitFor('step 3', () => c.api.getJob(job.id)!.step === 3);
    a0.send({progress: {jobId: job.id, generation: 1, rank: 0, step: 2 ** 62, epoch: 1}});
    a0.send({progress: {jobId: job.id, generation: 1, rank: 0, step: 9, epoch: 1}});
    a0.send({progress: {jobId: job.id, generation: 1, rank: 0, step: 2, epoch: 0.5}});
    a0.send({progress: {jobId: job.id, generation: 1, rank: 0, step: 4, epoch: Number.NaN}});
    a1.send({progress: {jobId: job.id, generation: 1, rank: 1, step: 4, epoch: 1, results: {knn_top1: 0.5}}});
    a1.trainer(job.id, 1, 1, TS.TRAINER_RUNNING, 2 ** 40);
    await waitFor('implausible progress refused', () =>
      (rejected(c, 'progress', 'step_out_of_range')) === 2 && (rejected(c, 'progress', 'step_not_monotone')) === 1 &&
      (rejected(c, 'progress', 'non_finite')) === 1 && (rejected(c, 'progress', 'results_not_rank0')) === 1 &&
      (rejected(c, 'trainer', 'step_out_of_range')) === 1);
    expect(c.api.getJob(job.id)!.step).toBe(3);

    // Checkpoints: rank 1's agent never registers one; rank 0's only step-<k> right inside the job folder.
    const jobDir = join(c.checkpointRoot, job.id);
    mkdirSync(jobDir, {recursive: true});
    symlinkSync('/etc', join(jobDir, 'step-000000004'));
    const ck = (path: string, step = 4) => ({checkpoint: {jobId: job.id, generation: 1, step, ok: true, path, bytes: 1, sha256: SHA}});
    a1.send(ck(join(jobDir, 'step-000000004')));
    for (const p of ['/etc', '../../..', join(jobDir, 'step-000000004'), join(jobDir, '..', 'step-000000004'),
      join(jobDir, 'step-000000005'), join(jobDir, 'x', 'step-000000004')]) a0.send(ck(p));
    a0.send(ck(join(jobDir, 'step-000000009'), 9));
    await waitFor('checkpoint refusals', () =>
      (rejected(c, 'checkpoint', 'not_holder')) === 1 && (rejected(c, 'checkpoint', 'path_outside_root')) === 6 &&
      (rejected(c, 'checkpoint', 'step_out_of_range')) === 1);
    a0.send({checkpoint: {jobId: job.id, generation: 1, step: 3, ok: true, path: join(jobDir, 'step-000000003'), bytes: 1, sha256: 'zz'}});
    a0.send({checkpoint: {jobId: job.id, generation: 1, step: 3, ok: true, path: 'step-000000003', bytes: 1, sha256: SHA}});
    await waitFor('the relative step-<k> path is recorded', () => c.api.checkpoints(job.id).length === 1);
    expect(rejected(c, 'checkpoint', 'implausible_checkpoint')).toBe(1);
    expect(existsSync('/etc/passwd')).toBe(true);
    await sleep(100);
    expect(c.api.getJob(job.id)!.state).toBe('RUNNING');
  });
});
