/** Spec fields to schedule-formula inputs, in one place: the coordinator and `byolctl plan` both use it. */
import type {JobSpec, ScheduleState} from '../domain/types';
import {computeSchedule} from '../schedules';
import {datasetSize} from './resolve';

/** The job's schedule state for W workers, from the resolved spec and the data on disk. */
export function scheduleFor(spec: JobSpec, workers: number, n = datasetSize(spec)): ScheduleState {
  const s = spec.spec as Record<string, any>;
  return computeSchedule({
    datasetSize: n,
    globalBatch: s.train.globalBatch,
    epochs: s.train.epochs,
    warmupEpochs: s.optimizer.warmupEpochs,
    baseLr: s.optimizer.baseLr,
    lrScaling: s.optimizer.lrScaling,
    tauBase: s.ema.base,
    tauSchedule: s.ema.schedule,
    microBatch: s.train.microBatch,
  }, workers);
}
