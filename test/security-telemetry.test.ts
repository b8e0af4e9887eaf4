/**
 * Attacks on the telemetry port, as anyone who can reach it runs them: a hostile ZeroMQ PUSH client
 * sends forged frames (no MAC, a wrong key, another rank's key), a step of 2^62, a flood of 100k
 * frames with distinct steps, and (from a separate Python process) one 200 MB frame. The real
 * coordinator keeps only the real trainers' points, bounded in memory.
 */
import {afterEach, describe, expect, test} from '@jest/globals';
import {spawn} from 'node:child_process';
import {createHmac, randomBytes} from 'node:crypto';
import pino from 'pino';
import * as zmq from 'zeromq';
import {byol} from '../orchestrator/src/gen/proto';
import {startTestCoordinator, tinySpec, TEST_TOKEN, type TestCoordinator} from './helpers/test-coordinator';
import {TS, TsAgent} from './helpers/ts-agent';
import {PYTHON_BIN} from './helpers/temp';
import {sleep, waitFor} from './helpers/wait';

let coord: TestCoordinator | null = null;
const agents: TsAgent[] = [];
const socks: zmq.Push[] = [];
afterEach(async () => {
  for (const s of socks.splice(0)) s.close();
  for (const a of agents.splice(0)) a.close();
  await coord?.cleanup();
  coord = null;
});

type Frame = byol.v1.IMetric;
const mac = (key: Buffer, frame: Uint8Array) => createHmac('sha256', key).update(frame).digest();

/** The coordinator's warnings, as its log would show them. */
const warnings: {msg: string; reason?: string; suppressedSinceLast?: number}[] = [];

/** A running 2-rank job (K = 8) and each rank's telemetry key from its assignment. */
async function runningJob(): Promise<{c: TestCoordinator; jobId: string; keys: Buffer[]}> {
  warnings.length = 0;
  coord = await startTestCoordinator({logger: pino({level: 'warn'}, {write: (line: string) => void warnings.push(JSON.parse(line))})});
  const c = coord;
  const group = ['agent-0', 'agent-1'].map((id) => new TsAgent(c.grpcAddress, id, TEST_TOKEN).connect());
  agents.push(...group);
  await waitFor('agents', () => c.api.workers().filter((w) => w.connected).length === 2);
  const job = c.api.submit(tinySpec({workers: 2, epochs: 2}));
  const a0 = (await group[0].nextAssign({host: true, withAddress: false})).assign!;
  group[0].send({rendezvous: {jobId: a0.jobId, generation: 1, address: '127.0.0.1:29999'}});
  const assigns = await Promise.all(group.map(async (g) => (await g.nextAssign({withAddress: true})).assign!));
  group.forEach((g, r) => g.trainer(job.id, 1, r, TS.TRAINER_RUNNING));
  const keys = [0, 1].map((r) => Buffer.from(assigns.find((a) => a.rank === r)!.telemetryKey!));
  return {c, jobId: job.id, keys};
}

function push(c: TestCoordinator): zmq.Push {
  const s = new zmq.Push({linger: 2000, sendHighWaterMark: 200_000});
  s.connect(c.telemetryAddress);
  socks.push(s);
  return s;
}

const metric = (jobId: string, rank: number, step: number, loss: number): Frame => ({
  jobId, generation: 1, rank, worldSize: 2, step, loss, tau: 0.99, lr: 0.1, stepTimeS: 0.5, dataTimeS: 0.01, imagesPerSec: 8, epoch: step / 4,
});

/** What the real trainers send: rank r signs with its own key; loss 1 (rank 0) and 2 (rank 1). */
async function realSteps(s: zmq.Push, jobId: string, keys: Buffer[], steps: number[]): Promise<void> {
  for (const step of steps) {
    for (const rank of [0, 1]) {
      const f = byol.v1.Metric.encode(metric(jobId, rank, step, 1 + rank)).finish();
      await s.send([f, mac(keys[rank], f)]);
    }
  }
}

/** byol_telemetry_frames_total by outcome, as Prometheus would scrape it. */
async function frames(c: TestCoordinator): Promise<Record<string, number>> {
  const {values} = await c.registry.getSingleMetric('byol_telemetry_frames_total')!.get();
  return Object.fromEntries(values.map((v) => [String(v.labels.outcome), v.value]));
}

async function waitCounted(what: string, c: TestCoordinator, check: (f: Record<string, number>) => boolean, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let f = await frames(c);
  while (!check(f)) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(f)}`);
    await sleep(100);
    f = await frames(c);
  }
}

describe('telemetry frames need their rank\'s MAC and plausible values', () => {
  test('forged frames (no MAC, a random key, another rank\'s key) and a step of 2^62 change nothing', async () => {
    const {c, jobId, keys} = await runningJob();
    const evil = push(c);
    for (let step = 0; step < 8; step++) {
      for (const rank of [0, 1]) {
        const f = byol.v1.Metric.encode(metric(jobId, rank, step, 1234.5)).finish();
        await evil.send(f); // what the attacker sent: a bare Metric
        await evil.send([f, mac(randomBytes(32), f)]);
        await evil.send([f, mac(keys[1 - rank], f)]); // rank 0's trainer cannot speak for rank 1
        await evil.send([f, Buffer.alloc(0)]);
      }
    }
    const huge = byol.v1.Metric.encode(metric(jobId, 0, 2 ** 62, 1234.5)).finish();
    await evil.send([huge, mac(randomBytes(32), huge)]);
    await evil.send([huge, mac(keys[0], huge)]); // even signed: a step past K is dropped
    const real = push(c);
    await realSteps(real, jobId, keys, [0, 1, 2, 3]);
    const pts = await waitFor('4 real points', () => (c.api.metrics(jobId).length === 4 ? c.api.metrics(jobId) : null));
    expect(pts.map((p) => [p.step, p.loss, p.ranks])).toEqual([[0, 1.5, 2], [1, 1.5, 2], [2, 1.5, 2], [3, 1.5, 2]]);
    expect(c.api.getJob(jobId)!.loss).toBe(1.5);
    await waitCounted('forgeries counted', c, (f) => f.bad_mac === 49 && f.unsigned === 16 && f.out_of_range === 1);
    await sleep(500);
    expect(c.api.metrics(jobId).map((p) => p.step)).toEqual([0, 1, 2, 3]);
    // 66 drops, one warning per reason (rate-limited), each saying what to do.
    const dropped = warnings.filter((w) => /^telemetry frame dropped/.test(w.msg));
    expect(dropped.map((w) => w.reason).sort()).toEqual(['badMac', 'outOfRange', 'unsigned']);
    expect(dropped.find((w) => w.reason === 'badMac')!.msg).toMatch(/firewall the telemetry port/);
  });

  test('a flood of 100k forged frames with distinct steps cannot push out the real points', async () => {
    const {c, jobId, keys} = await runningJob();
    const real = push(c);
    await realSteps(real, jobId, keys, [0, 1, 2, 3]);
    await waitFor('4 real points', () => c.api.metrics(jobId).length === 4);
    const evil = push(c);
    const fake = randomBytes(32);
    for (let i = 0; i < 100_000; i++) {
      const f = byol.v1.Metric.encode(metric(jobId, i % 2, 8 + i, 1234.5)).finish();
      await evil.send([f, mac(fake, f)]);
    }
    await realSteps(real, jobId, keys, [4, 5, 6, 7]);
    await waitCounted('the flood counted', c, (f) => f.bad_mac === 100_000, 60_000);
    await waitFor('8 real points', () => c.api.metrics(jobId).length === 8);
    expect(c.api.metrics(jobId).map((p) => [p.step, p.loss])).toEqual([...Array(8).keys()].map((s) => [s, 1.5]));
  });

  test('a 300 MB frame from another process is refused before it is buffered; real frames still arrive', async () => {
    const {c, jobId, keys} = await runningJob();
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 5);
    const hostile = spawn(PYTHON_BIN, ['-c', [
      'import sys, time, zmq',
      's = zmq.Context.instance().socket(zmq.PUSH)',
      's.setsockopt(zmq.LINGER, 10000)',
      's.connect(sys.argv[1])',
      'time.sleep(0.3)',
      's.send_multipart([b"\\x0a" * (300 * 1024 * 1024), b"x" * 32])',
      's.close()',
      'zmq.Context.instance().term()',
      'print("sent")',
    ].join('\n'), c.telemetryAddress], {stdio: ['ignore', 'pipe', 'inherit']});
    let out = '';
    hostile.stdout.on('data', (d) => { out += String(d); });
    await new Promise((r) => hostile.once('exit', r));
    await sleep(500);
    clearInterval(sampler);
    expect(out.trim()).toBe('sent');
    await realSteps(push(c), jobId, keys, [0, 1]);
    await waitFor('2 real points', () => c.api.metrics(jobId).length === 2);
    const grewMb = (peak - before) / 2 ** 20;
    expect(grewMb).toBeLessThan(100); // the issue saw RSS peak at +590 MB for a 300 MB frame
    expect((await frames(c)).malformed).toBe(0); // disconnected by libzmq, never decoded
  });
});
