/**
 * Telemetry ingest benchmark (docs/architecture.md §10: tens of thousands of frames per second on one core).
 *
 *   node --import tsx bench/ts/telemetry-ingest.ts [--ranks 64] [--steps 2000] [--rounds 3] [--quick]
 *
 * The coordinator's real ingest (orchestrator/src/telemetry/ingest.ts: ZeroMQ PULL, protobuf decode,
 * generation fencing, per-step aggregation) feeding a real SQLite store and the Prometheus gauges, wired as
 * startCoordinator wires them. A Python load generator (bench/py/telemetry_load.py) plays `--ranks` trainer
 * ranks, one PUSH socket each, sending real byol.v1.Metric frames as fast as it can. Reported per round:
 * frames/s ingested (first to last frame), aggregated steps stored, and this process's CPU (all threads,
 * libzmq's I/O thread included) as a share of one core. A second figure, `ingestFrame` called in a loop
 * without a socket, is the per-frame cost of decode + aggregation alone.
 * Prints one JSON document; bench/run.sh saves it in bench/out/telemetry-ingest.json.
 */
import {spawn} from 'node:child_process';
import {mkdtempSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join, resolve} from 'node:path';
import {createInterface} from 'node:readline';
import pino from 'pino';
import type {Job} from '../../orchestrator/src/domain/types';
import {byol} from '../../orchestrator/src/gen/proto';
import {openStore} from '../../orchestrator/src/store';
import {TelemetryIngest} from '../../orchestrator/src/telemetry/ingest';
import {arg} from './args';
import {CoordinatorMetrics} from '../../orchestrator/src/telemetry/prom-metrics';

const REPO = resolve(__dirname, '..', '..');
const PYTHON = process.env.BYOL_PYTHON ?? join(REPO, '.venv', 'bin', 'python');

function fakeJob(id: string, ranks: number, steps: number): Job {
  return {
    id, name: id, priority: 0, state: 'RUNNING', spec: {apiVersion: 'byol/v1', kind: 'PretrainJob', metadata: {name: id}, spec: {}},
    specHash: 'bench', schedule: {totalSteps: steps, warmupSteps: 0, peakLr: 0.2, tauBase: 0.99, tauSchedule: 'cosine', stepsPerEpoch: 100,
      globalBatch: ranks * 8, microBatch: 8, accumulation: 1},
    submittedAtMs: Date.now(), startedAtMs: Date.now(), finishedAtMs: null, step: 0, totalSteps: steps, generation: 1,
    message: null, result: null,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One round: a fresh job, the generator started, timed from "go" until every frame is counted. */
async function round(ingest: TelemetryIngest, store: ReturnType<typeof openStore>, address: string, ranks: number, steps: number, n: number) {
  const jobId = `bench-ingest-${n}`;
  store.insertJob(fakeJob(jobId, ranks, steps));
  ingest.aggregator.setGeneration(jobId, 1, ranks);
  const total = ranks * steps;
  const keys = Array.from({length: ranks}, (_, r) => ingest.keys.keyFor(jobId, 1, r).toString('hex')).join(',');
  const framesBefore = ingest.aggregator.counters.frames;
  const gen = spawn(PYTHON, [join(REPO, 'bench', 'py', 'telemetry_load.py'), '--address', address, '--job', jobId,
    '--ranks', String(ranks), '--steps', String(steps), '--keys', keys], {stdio: ['pipe', 'pipe', 'inherit']});
  const lines = createInterface({input: gen.stdout!});
  const it = lines[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.value !== 'ready') throw new Error(`load generator did not start: ${first.value ?? 'no output'}`);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  gen.stdin!.write('go\n');
  let exited = false;
  gen.once('exit', () => (exited = true));
  let seen = 0;
  let lastChange = t0;
  while (ingest.aggregator.counters.frames - framesBefore < total) {
    const now = performance.now();
    const got = ingest.aggregator.counters.frames - framesBefore;
    if (got !== seen) [seen, lastChange] = [got, now];
    // nothing new for 10 s: frames were lost (the generator sends blocking, so this is a bug to report)
    if (now - lastChange > 10_000) throw new Error(`only ${got} of ${total} frames arrived${exited ? ' (the generator has exited)' : ''}`);
    await sleep(2);
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  ingest.flush();
  const sender = JSON.parse(String((await it.next()).value));
  if (!exited) await new Promise((r) => gen.once('exit', r));
  const stored = store.listMetrics(jobId).length;
  const last = store.listMetrics(jobId, {sinceStep: steps - 1})[0];
  return {
    ranks, steps, frames: total, seconds: Number(seconds.toFixed(3)), framesPerS: Math.round(total / seconds),
    receiverCpuCores: Number(((cpu.user + cpu.system) / 1e6 / seconds).toFixed(3)),
    stepsStored: stored, lastStepRanks: last?.ranks ?? 0, lost: total - (ingest.aggregator.counters.frames - framesBefore),
    sender,
  };
}

/** decode + aggregate only, no socket and no store: the per-frame CPU cost. */
function direct(ranks: number, steps: number): {frames: number; framesPerS: number} {
  const ingest = new TelemetryIngest({host: '127.0.0.1', port: 0, logger: pino({level: 'silent'}), onBatch: () => undefined});
  ingest.aggregator.setGeneration('direct', 1, ranks);
  const frames: Uint8Array[][] = [];
  for (let k = 0; k < steps; k++) {
    for (let r = 0; r < ranks; r++) {
      const frame = byol.v1.Metric.encode({jobId: 'direct', generation: 1, rank: r, worldSize: ranks, step: k, loss: 2.5, tau: 0.99,
        lr: 0.1, stepTimeS: 0.25, dataTimeS: 0.01, imagesPerSec: 512, epoch: k / 100, dropped: 0, sentUnixMs: Date.now(),
        extra: {z_std: 0.05}}).finish();
      frames.push([frame, ingest.sign(frame, 'direct', 1, r)]);
    }
  }
  const t0 = performance.now();
  for (const f of frames) ingest.ingestMessage(f, Date.now());
  const s = (performance.now() - t0) / 1000;
  return {frames: frames.length, framesPerS: Math.round(frames.length / s)};
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const ranks = arg('ranks', quick ? 8 : 64);
  const steps = arg('steps', quick ? 200 : 2000);
  const rounds = arg('rounds', quick ? 1 : 3);
  const dir = mkdtempSync(join(tmpdir(), 'byol-bench-ingest-'));
  const store = openStore(join(dir, 'store.db'));
  const logger = pino({level: 'warn'});
  const metrics = new CoordinatorMetrics(() => ({...ingest.aggregator.counters, malformed: ingest.malformed}), () => 0, () => ({}));
  // as startCoordinator wires it: batched store writes and the Prometheus gauges
  const ingest: TelemetryIngest = new TelemetryIngest({host: '127.0.0.1', port: 0, logger, onBatch: (jobId, points) => {
    if (!store.getJob(jobId)) return;
    store.appendMetrics(jobId, points, 100_000);
    for (const p of points) metrics.observe(jobId, p);
  }});
  const address = await ingest.start();
  const results = [];
  try {
    for (let n = 0; n < rounds; n++) {
      const r = await round(ingest, store, address, ranks, steps, n);
      process.stderr.write(`round ${n + 1}/${rounds}: ${r.framesPerS} frames/s, receiver CPU ${(100 * r.receiverCpuCores).toFixed(0)}% of a core, ` +
        `${r.stepsStored}/${steps} steps stored, ${r.lost} lost\n`);
      results.push(r);
    }
  } finally {
    await ingest.close();
    store.close();
    rmSync(dir, {recursive: true, force: true});
  }
  const rates = results.map((r) => r.framesPerS).sort((a, b) => a - b);
  const d = direct(ranks, Math.min(steps, 2000));
  process.stderr.write(`median ${rates[Math.floor(rates.length / 2)]} frames/s over the socket; ingestFrame alone ${d.framesPerS} frames/s\n`);
  process.stdout.write(JSON.stringify({
    ranks, steps, rounds: results, medianFramesPerS: rates[Math.floor(rates.length / 2)], ingestFrameOnly: d,
    goal: 'tens of thousands of frames/s on one core', node: process.version,
  }, null, 1) + '\n');
}

main().catch((err) => {
  process.stderr.write(`telemetry-ingest benchmark failed: ${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
});
