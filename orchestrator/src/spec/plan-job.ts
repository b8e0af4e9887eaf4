/** `byolctl plan`: what a job will do before it runs (steps, schedules, checkpoints), computed offline. */
import {SpecError} from '../domain/errors';
import type {JobSpec, ScheduleState} from '../domain/types';
import {lrAt, tauAt} from '../schedules';
import {datasetSize} from './resolve';
import {scheduleFor} from './schedule-for';
import {checkpointBytesEstimate} from './model-size';

export interface Plan extends ScheduleState {
  datasetSize: number;
  epochs: number;
  /** Checkpoints written over the whole run (every `everySteps`, plus the final one). */
  checkpointCount: number;
  /** Bytes of one checkpoint (model + optimizer state, fp32), an estimate from parameter counts. */
  checkpointBytesEstimate: number;
  at: {step: number; lr: number; tau: number}[];
}

/** Plan for W workers; LR and tau at 0, warmup end, K/2, K-1 and each step in `opts.at`. */
export function planJob(spec: JobSpec, workers: number, opts: {at?: number[]} = {}): Plan {
  const n = datasetSize(spec);
  const st = scheduleFor(spec, workers, n);
  const K = st.totalSteps;
  for (const k of opts.at ?? []) {
    if (!Number.isInteger(k) || k < 0 || k > K) {
      throw new SpecError([{path: 'at', message: `step ${k} must be an integer in [0, ${K}]`}]);
    }
  }
  const steps = [0, st.warmupSteps, Math.floor(K / 2), K - 1, ...(opts.at ?? [])];
  const at = [...new Set(steps)].map((step) => ({
    step,
    lr: lrAt(step, K, st.warmupSteps, st.peakLr),
    tau: tauAt(step, K, st.tauBase, st.tauSchedule),
  }));
  const every = (spec.spec as any).checkpoint.everySteps as number;
  const checkpointCount = every > 0 ? Math.ceil(K / every) : 1;
  return {
    ...st,
    datasetSize: n,
    epochs: (spec.spec as any).train.epochs,
    checkpointCount,
    checkpointBytesEstimate: checkpointBytesEstimate(spec),
    at,
  };
}
