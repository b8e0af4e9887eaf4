/**
 * Job identity and schedule numbers per world size. Same B, K, LR and tau for every W;
 * only microBatch/accumulation follow W (docs/internals.md "Schedule numbers").
 */
import {createHash, randomBytes} from 'node:crypto';
import type {JobSpec, ScheduleState} from '../domain/types';
import {computeSchedule} from '../schedules';
import {datasetSize} from '../spec/resolve';

/** The schedule state for world size W (throws SpecError when W does not divide B). */
export function scheduleFor(spec: JobSpec, W: number): ScheduleState {
  const s = spec.spec as Record<string, any>;
  return computeSchedule({
    datasetSize: datasetSize(spec),
    globalBatch: s.train.globalBatch,
    epochs: s.train.epochs,
    warmupEpochs: s.optimizer.warmupEpochs,
    baseLr: s.optimizer.baseLr,
    lrScaling: s.optimizer.lrScaling,
    tauBase: s.ema.base,
    microBatch: s.train.microBatch ?? 0,
  }, W);
}

/** sha256 of the resolved spec's JSON (keys in document order, as resolved). */
export function hashSpec(spec: JobSpec): string {
  return createHash('sha256').update(JSON.stringify(spec)).digest('hex');
}

/** "<name>-<6 hex>": readable and unique enough for one coordinator. */
export function newJobId(name: string): string {
  return `${name}-${randomBytes(3).toString('hex')}`;
}

export interface JobResources {workers: number; minWorkers: number; globalBatch: number}

export function resourcesOf(spec: JobSpec): JobResources {
  const s = spec.spec as Record<string, any>;
  return {workers: s.resources.workers, minWorkers: s.resources.minWorkers ?? s.resources.workers, globalBatch: s.train.globalBatch};
}

export function checkpointPolicy(spec: JobSpec): {everySteps: number; keepLast: number; keepEvery: number} {
  const c = (spec.spec as Record<string, any>).checkpoint ?? {};
  return {everySteps: c.everySteps ?? 0, keepLast: c.keepLast ?? 3, keepEvery: c.keepEvery ?? 0};
}
