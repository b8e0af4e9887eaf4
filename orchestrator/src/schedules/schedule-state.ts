/** The schedule state the coordinator owns and hands trainers (docs/architecture.md §6, docs/internals.md). */
import presets from '../../../contract/presets.json';
import {SpecError} from '../domain/errors';
import type {ScheduleState} from '../domain/types';

export interface ScheduleInputs {
  datasetSize: number;   // N
  globalBatch: number;   // B
  epochs: number;
  warmupEpochs: number;
  baseLr: number;
  lrScaling: 'linear' | 'none';
  tauBase: number;
  tauSchedule: 'cosine' | 'constant';
  microBatch: number;    // train.microBatch, 0 = B / W
}

/** Worker counts that divide B (for error messages). */
export function divisorsOf(B: number): number[] {
  const out: number[] = [];
  for (let d = 1; d <= B; d += 1) if (B % d === 0) out.push(d);
  return out;
}

/** b and a with W*b*a = B: b = B/W unless microBatch caps it at the largest divisor of B/W <= microBatch. */
export function splitBatch(B: number, W: number, microBatch: number): {microBatch: number; accumulation: number} {
  // Same wording as worker-py/byol_worker/core/schedule_plan.py split_batch (test/vectors/schedules.json).
  if (!Number.isInteger(W) || W < 1 || B % W !== 0) {
    throw new SpecError([{
      path: 'spec.train.globalBatch',
      message: `${B} cannot be split over spec.resources.workers = ${W}; worker counts that divide it: ${divisorsOf(B).join(', ')}`,
    }]);
  }
  const perRank = B / W;
  let b = perRank;
  if (microBatch > 0 && microBatch < perRank) {
    b = 1;
    for (let d = microBatch; d >= 1; d -= 1) if (perRank % d === 0) { b = d; break; }
  }
  return {microBatch: b, accumulation: perRank / b};
}

/** The most optimizer steps a job may resolve to (K): contract/presets.json rules.maxTotalSteps. */
export const MAX_TOTAL_STEPS: number = presets.rules.maxTotalSteps;

/** stepsPerEpoch, K, warmup and peak LR for world size W. */
export function computeSchedule(inp: ScheduleInputs, W: number): ScheduleState {
  const {datasetSize: N, globalBatch: B} = inp;
  const stepsPerEpoch = Math.floor(N / B);
  if (stepsPerEpoch === 0) {
    throw new SpecError([{path: 'spec.train.globalBatch', message: `${B} is larger than the dataset (${N} samples)`}]);
  }
  const totalSteps = Math.max(1, Math.floor(inp.epochs * stepsPerEpoch));
  if (totalSteps > MAX_TOTAL_STEPS) {
    throw new SpecError([{path: 'spec.train.epochs', message: `${inp.epochs} epochs of ${stepsPerEpoch} steps make ${totalSteps} steps, over the maximum of ${MAX_TOTAL_STEPS}; lower spec.train.epochs or raise spec.train.globalBatch`}]);
  }
  const warmupSteps = Math.min(Math.floor(inp.warmupEpochs * stepsPerEpoch), totalSteps - 1);
  const peakLr = inp.lrScaling === 'linear' ? (inp.baseLr * B) / 256 : inp.baseLr;
  return {
    totalSteps, warmupSteps, peakLr, tauBase: inp.tauBase, tauSchedule: inp.tauSchedule, stepsPerEpoch, globalBatch: B,
    ...splitBatch(B, W, inp.microBatch),
  };
}
