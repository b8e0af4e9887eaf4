/** The ZeroMQ ingest: real PUSH -> PULL, per-step aggregation, batched writes, malformed frames counted. */
import {afterEach, describe, expect, test} from '@jest/globals';
import pino from 'pino';
import * as zmq from 'zeromq';
import type {MetricPoint} from '../orchestrator/src/domain/types';
import {byol} from '../orchestrator/src/gen/proto';
import {etaSeconds} from '../orchestrator/src/coordinator/views';
import {TelemetryIngest} from '../orchestrator/src/telemetry/ingest';
import {waitFor} from './helpers/wait';

let ingest: TelemetryIngest | null = null;
afterEach(async () => {
  await ingest?.close();
  ingest = null;
});

describe('TelemetryIngest', () => {
  test('aggregates 2 ranks x 1000 steps from a real socket and stores them in a few batches', async () => {
    const batches: {jobId: string; points: MetricPoint[]}[] = [];
    ingest = new TelemetryIngest({host: '127.0.0.1', port: 0, logger: pino({level: 'silent'}), flushIntervalMs: 100,
      onBatch: (jobId, points) => batches.push({jobId, points})});
    const address = await ingest.start();
    ingest.aggregator.setGeneration('j', 3, 2);
    const push = new zmq.Push({linger: 1000, sendHighWaterMark: 10_000});
    push.connect(address);
    for (let step = 0; step < 1000; step++) {
      for (let rank = 0; rank < 2; rank++) {
        // rank 1 sends frames as trainers before sync_wait_ms did (the field absent: 0)
        const frame = byol.v1.Metric.encode({jobId: 'j', generation: 3, rank, worldSize: 2, step, loss: rank, imagesPerSec: 5,
          stepTimeS: 0.1 * (rank + 1), ...(rank === 0 ? {syncWaitMs: 50} : {})}).finish();
        await push.send([frame, ingest.sign(frame, 'j', 3, rank)]);
      }
    }
    await push.send([Buffer.from([0xff, 0xff, 0xff]), Buffer.alloc(32)]); // not a Metric
    await waitFor('1000 points', () => batches.reduce((n, b) => n + b.points.length, 0) === 1000, 10_000);
    push.close();
    const all = batches.flatMap((b) => b.points);
    expect(all.map((p) => p.step)).toEqual([...Array(1000).keys()]);
    expect(all.every((p) => p.loss === 0.5 && p.imagesPerSec === 10 && p.slowestRank === 1 && p.ranks === 2)).toBe(true);
    expect(all.every((p) => p.perRank!.syncWaitS![0] === 0.05 && p.perRank!.syncWaitS![1] === 0)).toBe(true);
    expect(batches.length).toBeLessThan(100); // batched per flush, not one write per point
    await waitFor('malformed counted', () => ingest!.malformed === 1, 2000);
  });
});

describe('etaSeconds', () => {
  test('remaining steps x global batch / images per second', () => {
    expect(etaSeconds(10, 110, 256, 128)).toBe(200);
    expect(etaSeconds(110, 110, 256, 128)).toBe(0);
    expect(etaSeconds(10, 110, 256, null)).toBeNull();
    expect(etaSeconds(10, 110, 256, 0)).toBeNull();
  });
});
