/**
 * Health rules and the dashboard's downsampling as pure functions, on z_std sequences measured on the
 * tiny test model (README, Dashboard: healthy runs, a transient dip that recovers, a collapsed run).
 */
import {describe, expect, test} from '@jest/globals';
import type {HealthAlarm, MetricPoint} from '../orchestrator/src/domain/types';
import {HealthMonitor} from '../orchestrator/src/health/health-monitor';
import {collapseZStd, cosineFromLoss, isCollapsed, ownTimeS, policyOf, rankSkew} from '../orchestrator/src/health/health-rules';
import {StepAggregator} from '../orchestrator/src/telemetry/aggregator';
import {bucketRanges, columnMeans, minMax} from '../orchestrator/src/web/downsample';
import {buildSeries} from '../orchestrator/src/web/series';

// z_std per step, `python -m byol_worker train` on the tiny spec (outDim 16, B 8), 1 rank.
const HEALTHY = [0.1872, 0.1879, 0.1923, 0.1852, 0.1892, 0.2009, 0.2041, 0.2051, 0.2073, 0.2005, 0.1886, 0.1735, 0.1904, 0.189,
  0.1764, 0.1902, 0.189, 0.1668, 0.1657, 0.1655, 0.1745, 0.1726, 0.1819, 0.1929, 0.1784, 0.1735, 0.1732, 0.1709, 0.1574, 0.1642];
const DIP = [0.1872, 0.2169, 0.1928, 0.1994, 0.2029, 0.1273, 0.1356, 0.1405, 0.0223, 0.0275, 0.1003, 0.1051, 0.1447, 0.1608, 0.1481];
const COLLAPSED = [0.1872, 0.211, 0.1648, 0.1745, 0.2093, 0.1609, 0.0024, ...Array(33).fill(0)];
const SPEC = {model: {projector: {outDim: 16}}};

function points(zs: number[], ranks = 1, stepTime = (_r: number, _k: number) => 0.1,
  syncWait?: (r: number, k: number) => number): MetricPoint[] {
  return zs.map((z, k) => ({
    step: k, generation: 1, loss: 2, tau: 0.99, lr: 0.1, imagesPerSec: 80, stepTimeS: 0.1, dataTimeS: 0.01, slowestRank: 0,
    ranks, epoch: k / 20, tMs: 1000 + k * 100,
    perRank: {stepTimeS: [...Array(ranks).keys()].map((r) => stepTime(r, k)), dataTimeS: Array(ranks).fill(0.01), zStd: Array(ranks).fill(z),
      ...(syncWait ? {syncWaitS: [...Array(ranks).keys()].map((r) => syncWait(r, k))} : {})},
  }));
}

describe('health rules', () => {
  const policy = policyOf(SPEC);
  const thr = collapseZStd(SPEC, policy);

  test('defaults come from presets.json; the threshold scales with 1/sqrt(outDim)', () => {
    expect(policy).toEqual({onCollapse: 'warn', collapseThreshold: 0.05, collapseWindowSteps: 10, stallSeconds: 120, skewThreshold: 2});
    expect(thr).toBeCloseTo(0.0125, 12);
    expect(collapseZStd({model: {projector: {outDim: 256}}}, policy)).toBeCloseTo(0.003125, 12);
  });

  test('collapse: the measured collapsed run trips it, healthy runs and a 2-step dip do not', () => {
    const windows = (zs: number[]) => zs.map((_z, k) => isCollapsed(points(zs.slice(0, k + 1)), thr, 10));
    expect(windows(HEALTHY).some(Boolean)).toBe(false);
    expect(windows(DIP).some(Boolean)).toBe(false);
    expect(windows(COLLAPSED).indexOf(true)).toBe(15); // steps 6..15 all below 0.0125
  });

  test('cosine similarity is 1 - loss/4 (two 2 - 2cos terms)', () => {
    expect(cosineFromLoss(0)).toBe(1);
    expect(cosineFromLoss(4)).toBe(0);
    expect(cosineFromLoss(8)).toBe(-1);
    expect(cosineFromLoss(NaN)).toBeNull();
  });

  test('rank skew: slowest rank over the median rank', () => {
    const pts = points(HEALTHY.slice(0, 5), 4, (r) => (r === 3 ? 0.3 : 0.1));
    expect(rankSkew(pts)).toEqual({skew: expect.closeTo(3, 9), slowestRank: 3});
    expect(rankSkew(points(HEALTHY.slice(0, 5), 1))).toBeNull();
  });

  test('rank skew compares own time (step time less the wait for the others): a lockstep straggler shows', () => {
    // 4 ranks in lockstep: all report 0.3 s; ranks 0-2 computed for 0.1 s and waited 0.2 s for rank 3
    const lockstep = points(HEALTHY.slice(0, 5), 4, () => 0.3, (r) => (r === 3 ? 0.001 : 0.2));
    expect(rankSkew(lockstep)).toEqual({skew: expect.closeTo(0.299 / 0.1, 9), slowestRank: 3});
    // the same job seen by step time alone (frames without the wait): even, the straggler is invisible
    expect(rankSkew(points(HEALTHY.slice(0, 5), 4, () => 0.3))!.skew).toBe(1);
    const s = lockstep[0].perRank!;
    expect([0, 3].map((r) => ownTimeS(s, r))).toEqual([expect.closeTo(0.1, 12), expect.closeTo(0.299, 12)]);
    expect(ownTimeS({...s, syncWaitS: [0.5, 0, 0, 0]}, 0)).toBe(0); // a wait longer than the step: clamped
    expect(ownTimeS({...s, stepTimeS: [null, 0.3, 0.3, 0.3]}, 0)).toBeNull();
  });

  test('the aggregator keeps each rank\'s sync wait beside its step time; frames without it count 0', () => {
    const got: MetricPoint[] = [];
    const agg = new StepAggregator((_id, p) => got.push(p));
    agg.setGeneration('j', 1, 2, 10);
    const frame = {jobId: 'j', generation: 1, step: 0, loss: 2, tau: 0.99, lr: 0.1, stepTimeS: 0.3, dataTimeS: 0.01,
      imagesPerSec: 10, epoch: 0.1, dropped: 0, worldSize: 2};
    expect(agg.add({...frame, rank: 0, syncWaitS: 0.2}, 0)).toBeNull();
    expect(agg.add({...frame, rank: 1}, 0)).toBeNull();
    expect(got[0].perRank!.syncWaitS).toEqual([0.2, 0]);
    expect(agg.add({...frame, step: 1, rank: 0, syncWaitS: NaN}, 0)).toBe('nonFinite');
  });

  test('the monitor raises collapse once, skew with the slow rank, stalled ranks by time, and clears them', () => {
    const changes: [string, HealthAlarm['kind'], boolean][] = [];
    const m = new HealthMonitor((_id, a, raised) => changes.push([_id, a.kind, raised]));
    m.watch('j', {...SPEC, health: {onCollapse: 'stop'}}, 1);
    m.observe('j', points(COLLAPSED, 3, (r) => (r === 1 ? 0.5 : 0.1)));
    expect(changes).toEqual([['j', 'collapse', true], ['j', 'rank-skew', true]]);
    expect(m.policy('j')!.onCollapse).toBe('stop');
    const h = m.health('j')!;
    expect(h).toMatchObject({cosineSimilarity: 0.5, zStd: 0, rankSkew: expect.closeTo(5, 9), slowestRank: 1});
    m.tick(1000 + 39 * 100 + 121_000, () => 3);
    expect(changes[2]).toEqual(['j', 'stalled-ranks', true]);
    expect(m.health('j')!.stalledRanks).toEqual([0, 1, 2]);
    m.watch('j', SPEC, 2); // a new generation: stalled ranks are cleared
    expect(changes[3]).toEqual(['j', 'stalled-ranks', false]);
    m.forget('j');
    expect(m.health('j')!.alarms.map((a) => a.kind).sort()).toEqual(['collapse', 'rank-skew']);
  });
});

describe('downsampling', () => {
  test('bucket ranges cover every item once', () => {
    const r = bucketRanges(10, 3);
    expect(r).toEqual([[0, 3], [3, 6], [6, 10]]);
    expect(bucketRanges(2, 5)).toEqual([[0, 1], [1, 2]]);
  });

  test('min/max keeps spikes and sends at most 2 points per bucket', () => {
    const x = [...Array(100_000).keys()];
    const y = x.map((i) => (i === 54_321 ? 99 : i % 7));
    const m = minMax(x, [y], 800);
    expect(m.x.length).toBe(1600);
    expect(Math.max(...(m.ys[0] as number[]))).toBe(99);
    expect(minMax([1, 2, 3], [[1, 2, 3]], 800)).toEqual({x: [1, 2, 3], ys: [[1, 2, 3]]});
  });

  test('column means per bucket skip missing ranks', () => {
    const rows = [[1, null], [3, 4], [5, 6]];
    expect(columnMeans((i, c) => rows[i][c], 2, [[0, 2], [2, 3]])).toEqual([[2, 5], [4, 6]]);
  });

  test('a job with 100k steps and 64 ranks becomes a payload sized by the plot width', () => {
    const pts = points(Array(100_000).fill(0.2), 64);
    const reads: number[] = [];
    const s = buildSeries(pts.map(({perRank: _r, ...p}) => p), 800, (steps) => {
      reads.push(...steps);
      return new Map(steps.map((k) => [k, pts[k].perRank!]));
    });
    expect(reads.length).toBeLessThanOrEqual(200 * 8); // per-rank values are read for sampled steps only
    expect(s.points).toBe(100_000);
    expect(s.scalars.x.length).toBe(1600);
    expect(s.ranks.x.length).toBe(200);
    expect(s.ranks.zStd.length).toBe(64);
    expect(s.ranks.zStd[5][7]).toBe(0.2);
    expect(s.ranks.dataShare[0][0]).toBe(0.1);
    expect(s.ranks.ownTimeS[3][9]).toBe(0.1); // no wait in these points: own time = step time
    expect(JSON.stringify(s).length).toBeLessThan(600_000);
  });
});
