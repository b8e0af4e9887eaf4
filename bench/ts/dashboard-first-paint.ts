/**
 * Dashboard benchmark: bytes and time to first paint of a job page with 100k stored steps of 64 ranks.
 *
 *   node --import tsx bench/ts/dashboard-first-paint.ts [--steps 100000] [--ranks 64] [--loads 3]
 *
 * Writes `--steps` aggregated points (each with its 64 per-rank step time, data time and z_std, as the
 * aggregator stores them) into a real SQLite store, starts the real coordinator and REST server on it,
 * and opens the job page in headless Chromium (/usr/bin/chromium, playwright-core), `--loads` times.
 * Per load: milliseconds from navigation start until every plot holds its data (all 7 uPlot charts
 * drawn), first contentful paint, bytes the browser received on the wire (all responses with headers, and the
 * series reply's body alone).
 * Also the series endpoint alone, timed from Node. Prints one JSON document.
 */
import {randomBytes} from 'node:crypto';
import {mkdtempSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import pino from 'pino';
import {chromium} from 'playwright-core';
import {startApiServer} from '../../orchestrator/src/api';
import {startCoordinator} from '../../orchestrator/src/coordinator/start';
import type {Job, MetricPoint} from '../../orchestrator/src/domain/types';
import {openStore} from '../../orchestrator/src/store';
import {arg} from './args';

const r4 = (v: number) => Number(v.toPrecision(4));

function fill(storePath: string, jobId: string, steps: number, ranks: number): void {
  const store = openStore(storePath);
  const job: Job = {
    id: jobId, name: jobId, priority: 0, state: 'SUCCEEDED',
    spec: {apiVersion: 'byol/v1', kind: 'PretrainJob', metadata: {name: jobId}, spec: {model: {projector: {outDim: 256}}}},
    specHash: 'bench', schedule: {totalSteps: steps, warmupSteps: 1000, peakLr: 4.8, tauBase: 0.996, tauSchedule: 'cosine', stepsPerEpoch: 312,
      globalBatch: 4096, microBatch: 64, accumulation: 1},
    submittedAtMs: Date.now(), startedAtMs: Date.now(), finishedAtMs: Date.now(), step: steps, totalSteps: steps, generation: 1,
    message: null, result: {knnTop1: 0.7},
  };
  store.insertJob(job);
  store.upsertGeneration(jobId, {generation: 1, worldSize: ranks, startStep: 0, endStep: steps, endReason: 'completed', stepsLost: 0,
    recoverySeconds: null, startedAtMs: Date.now(), endedAtMs: Date.now(), agents: [...Array(ranks).keys()].map((r) => `agent-${r}`)});
  const batch: MetricPoint[] = [];
  const knnEvery = Math.max(1, Math.floor(steps / 32));
  for (let k = 0; k < steps; k++) {
    const st = [...Array(ranks).keys()].map((r) => r4(0.3 + 0.02 * Math.sin(k / 50 + r) + (r === 7 ? 0.1 : 0)));
    batch.push({
      step: k, generation: 1, loss: 4 * Math.exp(-k / 20000) + 0.05 * Math.sin(k), tau: 1 - 0.004 * (Math.cos((Math.PI * k) / steps) + 1) / 2,
      lr: 4.8 * Math.min(1, k / 1000), imagesPerSec: 9000 + 500 * Math.sin(k / 300), stepTimeS: Math.max(...st), dataTimeS: 0.02,
      slowestRank: 7, ranks, epoch: k / 312, tMs: Date.now(),
      ...(k % knnEvery === knnEvery - 1 ? {extra: {knn_top1: 0.3 + 0.4 * (k / steps)}} : {}), // 32 monitor points
      perRank: {stepTimeS: st, dataTimeS: st.map((t, r) => r4(0.01 + 0.001 * r)), zStd: st.map((_t, r) => r4(0.06 + 0.001 * Math.cos(k + r)))},
    });
    if (batch.length === 5000) store.appendMetrics(jobId, batch.splice(0), 0);
  }
  store.appendMetrics(jobId, batch, 0);
  store.close();
}

async function main(): Promise<void> {
  const steps = arg('steps', 100_000);
  const ranks = arg('ranks', 64);
  const loads = arg('loads', 3);
  const dir = mkdtempSync(join(tmpdir(), 'byol-bench-dash-'));
  const storePath = join(dir, 'store.db');
  const jobId = 'bench-dashboard';
  const t0 = performance.now();
  fill(storePath, jobId, steps, ranks);
  const fillS = (performance.now() - t0) / 1000;
  const logger = pino({level: 'warn'});
  const coord = await startCoordinator({storePath, checkpointRoot: join(dir, 'ck'), agentToken: randomBytes(16).toString('hex'), launcher: 'external',
    grpcHost: '127.0.0.1', grpcPort: 0, telemetryPort: 0, logger, metricsMaxPoints: steps});
  const rest = await startApiServer({api: coord.api, logger, host: '127.0.0.1', port: 0, registry: coord.registry});
  const profile = mkdtempSync(join(tmpdir(), 'byol-bench-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.BYOL_CHROMIUM ?? '/usr/bin/chromium', headless: true, viewport: {width: 1400, height: 1000},
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  try {
    const series: {ms: number; bytes: number; jsonBytes: number}[] = [];
    for (let i = 0; i < loads; i++) {
      const s0 = performance.now();
      const res = await fetch(`${rest.url}/ui/api/jobs/${jobId}/series?width=660`, {headers: {'accept-encoding': 'gzip'}});
      const body = await res.text();
      series.push({ms: Math.round(performance.now() - s0), bytes: Number(res.headers.get('content-length')), jsonBytes: body.length});
    }
    const pageLoads = [];
    for (let i = 0; i < loads; i++) {
      const page = await ctx.newPage();
      let bytes = 0;
      let seriesBytes = 0;
      // Bytes on the wire (gzipped where the server gzips), headers included.
      page.on('requestfinished', (req) => void req.sizes().then((z) => {
        bytes += z.responseBodySize + z.responseHeadersSize;
        if (req.url().includes('/series')) seriesBytes += z.responseBodySize;
      }).catch(() => undefined));
      await page.goto(`${rest.url}/#/job/${jobId}`);
      await page.waitForFunction(() => ['loss', 'knn', 'sched', 'imgs', 'step', 'data', 'z']
        .every((p) => Number(document.querySelector(`#p-${p}`)?.getAttribute('data-points') ?? 0) > 0), undefined, {timeout: 120_000});
      const plotsMs = await page.evaluate(() => performance.now());
      const fcp = await page.evaluate(() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null);
      await page.waitForLoadState('networkidle').catch(() => undefined);
      pageLoads.push({plotsDrawnMs: Math.round(plotsMs), firstContentfulPaintMs: fcp === null ? null : Math.round(fcp), bytes, seriesBytes});
      await page.close();
    }
    console.log(JSON.stringify({benchmark: 'dashboard-first-paint', steps, ranks, fillSeconds: Number(fillS.toFixed(1)),
      seriesEndpoint: series, pageLoads, load: (await import('node:os')).loadavg().map((v) => Number(v.toFixed(2)))}, null, 2));
  } finally {
    await ctx.close();
    await rest.close();
    await coord.close();
    rmSync(profile, {recursive: true, force: true});
    rmSync(dir, {recursive: true, force: true});
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
