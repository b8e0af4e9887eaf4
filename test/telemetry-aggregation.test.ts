import {describe, expect, test} from '@jest/globals';
import type {MetricPoint} from '../orchestrator/src/domain/types';
import {StepAggregator, type RankMetric} from '../orchestrator/src/telemetry/aggregator';

const m = (over: Partial<RankMetric>): RankMetric => ({
  jobId: 'j', generation: 1, rank: 0, worldSize: 2, step: 0, loss: 1, tau: 0.99, lr: 0.1, stepTimeS: 1,
  dataTimeS: 0.1, imagesPerSec: 10, epoch: 0, dropped: 0, ...over,
});

describe('StepAggregator', () => {
  test('mean loss, total images/s, slowest rank once all ranks reported', () => {
    const out: MetricPoint[] = [];
    const agg = new StepAggregator((_j, p) => out.push(p));
    agg.setGeneration('j', 1, 2);
    agg.add(m({rank: 0, loss: 1.0, imagesPerSec: 30, stepTimeS: 2.0, dataTimeS: 0.5}), 100);
    expect(out).toHaveLength(0);
    agg.add(m({rank: 1, loss: 2.0, imagesPerSec: 20, stepTimeS: 3.0, dataTimeS: 0.2}), 110);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({step: 0, loss: 1.5, imagesPerSec: 50, stepTimeS: 3.0, dataTimeS: 0.5, slowestRank: 1, ranks: 2, tau: 0.99, lr: 0.1});
  });

  test('stale generations and unknown jobs are dropped and counted', () => {
    const out: MetricPoint[] = [];
    const agg = new StepAggregator((_j, p) => out.push(p));
    agg.setGeneration('j', 2, 1);
    agg.add(m({generation: 1, worldSize: 1}), 0);
    agg.add(m({jobId: 'other'}), 0);
    expect(out).toHaveLength(0);
    expect(agg.counters).toMatchObject({frames: 2, stale: 1, unknownJob: 1});
    agg.add(m({generation: 2, worldSize: 1, loss: 0.7}), 0);
    expect(out.map((p) => p.loss)).toEqual([0.7]);
  });

  test('a step missing a rank is emitted after the timeout with the ranks that came', () => {
    const out: MetricPoint[] = [];
    const agg = new StepAggregator((_j, p) => out.push(p), 500);
    agg.setGeneration('j', 1, 2);
    agg.add(m({rank: 1, step: 3, loss: 0.4}), 1000);
    agg.tick(1400);
    expect(out).toHaveLength(0);
    agg.tick(1500);
    expect(out).toMatchObject([{step: 3, loss: 0.4, ranks: 1}]);
    agg.add(m({rank: 0, step: 3}), 1600); // late frame for an emitted step
    expect(agg.counters.late).toBe(1);
    expect(agg.latest('j')?.step).toBe(3);
  });

  test('a duplicate frame does not count twice', () => {
    const out: MetricPoint[] = [];
    const agg = new StepAggregator((_j, p) => out.push(p));
    agg.setGeneration('j', 1, 2);
    agg.add(m({rank: 0, loss: 1}), 0);
    agg.add(m({rank: 0, loss: 5}), 0);
    agg.add(m({rank: 1, loss: 3}), 0);
    expect(out[0].loss).toBe(2);
  });
});
