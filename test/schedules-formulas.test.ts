/** LR and tau schedules: hand-computed values and the vectors shared with Python (test/vectors/schedules.json). */
import {describe, expect, test} from '@jest/globals';
import {existsSync, readFileSync} from 'node:fs';
import {join} from 'node:path';
import {computeSchedule, lrAt, splitBatch, tauAt, type ScheduleInputs, type TauSchedule} from '../orchestrator/src/schedules';
import {SpecError} from '../orchestrator/src/domain/errors';

describe('tauAt (paper §3.3)', () => {
  test('starts at tauBase, is halfway at K/2, reaches 1 at K and stays there', () => {
    expect(tauAt(0, 100, 0.996)).toBe(0.996);
    expect(tauAt(50, 100, 0.996)).toBeCloseTo(0.998, 15);
    expect(tauAt(100, 100, 0.996)).toBe(1);
    expect(tauAt(150, 100, 0.996)).toBe(1); // k is clipped at K
    // K = 4, k = 1: 1 - 0.01 * (cos(pi/4) + 1) / 2 = 1 - 0.01 * 0.853553390593... = 0.991464466094...
    expect(tauAt(1, 4, 0.99)).toBeCloseTo(0.99146446609406726, 15);
  });
  test('constant: tauBase at every step (lightly\'s CIFAR-10 recipe)', () => {
    expect([0, 50, 100, 150].map((k) => tauAt(k, 100, 0.99, 'constant'))).toEqual([0.99, 0.99, 0.99, 0.99]);
  });
  test('official ImageNet numbers: tau(K-1) is 1 - 1e-13, never exactly 1', () => {
    const K = 312_784;
    expect(1 - tauAt(K - 1, K, 0.996)).toBeGreaterThan(0);
    expect(1 - tauAt(K - 1, K, 0.996)).toBeLessThan(2e-13);
  });
});

describe('lrAt (linear warmup, then cosine to 0)', () => {
  test('hand-computed points', () => {
    expect(lrAt(0, 100, 10, 3.2)).toBe(0);
    expect(lrAt(5, 100, 10, 3.2)).toBeCloseTo(1.6, 15);
    expect(lrAt(10, 100, 10, 3.2)).toBe(3.2);
    expect(lrAt(55, 100, 10, 3.2)).toBeCloseTo(1.6, 14); // halfway through the cosine
    // k = 25: 0.5 * (1 + cos(pi * 15 / 90)) = 0.5 * (1 + 0.866025403784) = 0.933012701892
    expect(lrAt(25, 100, 10, 3.2)).toBeCloseTo(3.2 * 0.93301270189221932, 14);
    expect(lrAt(100, 100, 10, 3.2)).toBeCloseTo(0, 15);
  });
  test('no warmup starts at the peak', () => {
    expect(lrAt(0, 10, 0, 1.0)).toBe(1.0);
  });
});

describe('computeSchedule (docs/internals.md "Schedule numbers")', () => {
  const base = {datasetSize: 20000, globalBatch: 256, epochs: 1000, warmupEpochs: 10, baseLr: 1.0,
    lrScaling: 'none' as const, tauBase: 0.99, tauSchedule: 'cosine' as const, microBatch: 0};
  test('cifar subset: 78 steps/epoch, K = 78000, warmup 780', () => {
    const s = computeSchedule(base, 4);
    expect(s).toEqual({totalSteps: 78000, warmupSteps: 780, peakLr: 1.0, tauBase: 0.99, tauSchedule: 'cosine', stepsPerEpoch: 78,
      globalBatch: 256, microBatch: 64, accumulation: 1});
  });
  test('linear scaling: 0.2 * 4096 / 256 = 3.2; ImageNet 1000 ep: 312 steps/epoch', () => {
    const s = computeSchedule({...base, datasetSize: 1_281_167, globalBatch: 4096, baseLr: 0.2, lrScaling: 'linear'}, 1);
    expect(s.peakLr).toBeCloseTo(3.2, 15);
    expect(s.stepsPerEpoch).toBe(312);
    expect(s.totalSteps).toBe(312_000);
    expect(s.warmupSteps).toBe(3120);
  });
  test('warmup is capped at K - 1 and K is at least 1', () => {
    const s = computeSchedule({...base, epochs: 0.001}, 1);
    expect(s.totalSteps).toBe(1);
    expect(s.warmupSteps).toBe(0);
  });
  test('a batch larger than the data names spec.train.globalBatch', () => {
    expect(() => computeSchedule({...base, datasetSize: 100}, 1)).toThrow(/spec\.train\.globalBatch: 256 is larger than the dataset \(100/);
  });
  test('micro-batch and accumulation: W*b*a = B', () => {
    expect(splitBatch(256, 4, 16)).toEqual({microBatch: 16, accumulation: 4});
    expect(splitBatch(256, 4, 24)).toEqual({microBatch: 16, accumulation: 4}); // largest divisor of 64 <= 24
    expect(splitBatch(256, 4, 100)).toEqual({microBatch: 64, accumulation: 1});
    expect(splitBatch(96, 2, 20)).toEqual({microBatch: 16, accumulation: 3});
  });
  test('B % W != 0 names both fields and lists the divisors', () => {
    let err: unknown;
    try {
      splitBatch(256, 3, 0);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SpecError);
    expect((err as SpecError).issues).toEqual([{path: 'spec.train.globalBatch',
      message: '256 cannot be split over spec.resources.workers = 3; worker counts that divide it: 1, 2, 4, 8, 16, 32, 64, 128, 256'}]);
  });
});

const VECTORS = join(__dirname, 'vectors', 'schedules.json');
interface VectorCase {k: number; K: number; warmupSteps: number; peakLr: number; lr: number; tauBase: number; tauSchedule: TauSchedule; tau: number}
describe('shared vectors agree with Python to 1e-12', () => {
  test('every case of test/vectors/schedules.json (written by the Python side)', () => {
    expect(existsSync(VECTORS)).toBe(true);
    const {cases} = JSON.parse(readFileSync(VECTORS, 'utf8')) as {cases: VectorCase[]};
    expect(cases.length).toBeGreaterThan(0);
    for (const c of cases) {
      expect(Math.abs(lrAt(c.k, c.K, c.warmupSteps, c.peakLr) - c.lr)).toBeLessThanOrEqual(1e-12);
      expect(Math.abs(tauAt(c.k, c.K, c.tauBase, c.tauSchedule) - c.tau)).toBeLessThanOrEqual(1e-12);
    }
  });
  test('every plan of the file: K, warmup, peak LR and the batch split from the spec numbers, W and N (or the issue)', () => {
    const {plans} = JSON.parse(readFileSync(VECTORS, 'utf8')) as {plans: PlanCase[]};
    expect(plans.length).toBeGreaterThanOrEqual(15);
    for (const p of plans) {
      let got: unknown;
      try {
        got = {plan: computeSchedule({...p.inputs, datasetSize: p.N}, p.W)};
      } catch (e) {
        if (!(e instanceof SpecError)) throw e;
        got = {issues: e.issues.map((i) => [i.path, i.message])};
      }
      expect({...p, ...(got as object)}).toEqual(p);
    }
  });
});

interface PlanCase {inputs: Omit<ScheduleInputs, 'datasetSize'>; W: number; N: number; plan?: object; issues?: [string, string][]}
