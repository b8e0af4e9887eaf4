/**
 * LR and tau schedules as functions of the 0-indexed global optimizer step k (docs/internals.md
 * "Schedule numbers"; paper §3.3). The Python trainer implements the same formulas; the shared vectors
 * in test/vectors/schedules.json prove they agree to 1e-12.
 */

/** Linear warmup from 0 over `warmupSteps`, then cosine decay to 0 at step K (k clipped at K, as the official code). */
export function lrAt(k: number, K: number, warmupSteps: number, peakLr: number): number {
  if (k < warmupSteps) return (peakLr * k) / warmupSteps;
  return peakLr * 0.5 * (1 + Math.cos((Math.PI * (Math.min(k, K) - warmupSteps)) / (K - warmupSteps)));
}

/**
 * cosine: tau_k = 1 - (1 - tauBase) * (cos(pi * min(k, K) / K) + 1) / 2, so tau(0) = tauBase and tau(K) = 1;
 * constant: tau_k = tauBase (lightly's CIFAR-10 benchmark).
 */
export function tauAt(k: number, K: number, tauBase: number, schedule: TauSchedule = 'cosine'): number {
  if (schedule === 'constant') return tauBase;
  return 1 - ((1 - tauBase) * (Math.cos((Math.PI * Math.min(k, K)) / K) + 1)) / 2;
}

export type TauSchedule = 'cosine' | 'constant';

export {computeSchedule, splitBatch, type ScheduleInputs} from './schedule-state';
