/** planJob by hand: the N = 20,000 CIFAR subset at ../shared/data/cifar10-jpeg. */
import {describe, expect, test} from '@jest/globals';
import {resolve} from 'node:path';
import {SpecError} from '../orchestrator/src/domain/errors';
import {planJob, resolveSpec} from '../orchestrator/src/spec';
import {mlpParams, modelParams} from '../orchestrator/src/spec/model-size';

const DATA = process.env.BYOL_SHARED_DATA ?? resolve(__dirname, '..', '..', 'shared', 'data', 'cifar10-jpeg');

function cifar(spec: Record<string, unknown> = {}) {
  return resolveSpec({apiVersion: 'byol/v1', kind: 'PretrainJob', metadata: {name: 'c10'},
    spec: {preset: 'byol-cifar', data: {format: 'npy', path: DATA}, ...spec}});
}

describe('planJob', () => {
  test('B = 256 on 20,000 images: 78 steps/epoch; 100 epochs -> K 7800, warmup 780', () => {
    const p = planJob(cifar({train: {epochs: 100}, checkpoint: {everySteps: 500}}), 4, {at: [1000]});
    expect(p).toMatchObject({datasetSize: 20000, epochs: 100, stepsPerEpoch: 78, totalSteps: 7800, warmupSteps: 780,
      peakLr: 1.0, tauBase: 0.99, globalBatch: 256, microBatch: 64, accumulation: 1});
    expect(p.checkpointCount).toBe(16); // steps 500, 1000, ..., 7500 and the final one at 7800
    expect(p.at.map((a) => a.step)).toEqual([0, 780, 3900, 7799, 1000]);
    const [s0, warm, half, last, k1000] = p.at;
    expect(s0).toEqual({step: 0, lr: 0, tau: 0.99});
    expect(warm.lr).toBe(1.0);
    // tau(K/2) = 1 - 0.01 * (cos(pi/2) + 1) / 2 = 0.995
    expect(half.tau).toBeCloseTo(0.995, 15);
    // lr(3900) = 0.5 * (1 + cos(pi * 3120 / 7020)) = 0.5 * (1 + cos(0.444444 pi)) = 0.5868240888334652
    expect(half.lr).toBeCloseTo(0.5868240888334652, 12);
    expect(last.tau).toBeGreaterThan(0.99999999);
    // lr(1000) = 0.5 * (1 + cos(pi * 220 / 7020)) = 0.997577...
    expect(k1000.lr).toBeCloseTo(0.5 * (1 + Math.cos((Math.PI * 220) / 7020)), 15);
  });

  test('linear scaling: byol-imagenet preset on this data, B 512 -> peak LR 0.2 * 2 = 0.4, 39 steps/epoch', () => {
    const s = resolveSpec({apiVersion: 'byol/v1', kind: 'PretrainJob', metadata: {name: 'in'},
      spec: {data: {format: 'npy', path: DATA}, train: {globalBatch: 512, epochs: 2}}});
    const p = planJob(s, 8);
    expect(p).toMatchObject({stepsPerEpoch: 39, totalSteps: 78, warmupSteps: 77, microBatch: 64});
    expect(p.peakLr).toBeCloseTo(0.4, 15);
  });

  test('micro-batch cap gives accumulation: W 2, microBatch 48 -> b 32, a 4', () => {
    expect(planJob(cifar({train: {microBatch: 48}}), 2)).toMatchObject({microBatch: 32, accumulation: 4});
  });

  test('workers that do not divide B are an error naming both fields', () => {
    expect(() => planJob(cifar(), 3)).toThrow(SpecError);
    expect(() => planJob(cifar(), 3)).toThrow(/spec\.train\.globalBatch: 256 cannot be split over spec\.resources\.workers = 3/);
  });

  test('--at outside [0, K] is refused', () => {
    expect(() => planJob(cifar({train: {epochs: 1}}), 1, {at: [79]})).toThrow(/at: step 79 must be an integer in \[0, 78\]/);
  });

  test('checkpoint size from parameter counts: ResNet-18 CIFAR + 4096/256 heads', () => {
    // 11,168,832 backbone + (512*4096 + 4096 + 2*4096 + 4096*256 + 256) projector = 14,327,104
    expect(mlpParams(512, 4096, 256)).toBe(3_158_272);
    const m = modelParams(cifar());
    expect(m.encoderProjector).toBe(14_327_104);
    expect(m.predictor).toBe(2_109_696);
    // online + target (2e) + predictor, plus momentum for online and predictor: 4 bytes * (3e + 2p)
    expect(planJob(cifar(), 1).checkpointBytesEstimate).toBe(4 * (3 * 14_327_104 + 2 * 2_109_696));
  });
});
