/**
 * What the coordinator reads from a job's resolved spec: the devices it needs, its checkpoint policy,
 * and its schedule on W ranks. Same B, K, LR and tau for every W; only microBatch/accumulation follow W
 * (docs/internals.md "Schedule numbers").
 */
import type {Job, JobSpec, ScheduleState} from '../domain/types';
import {scheduleFor} from '../spec';

/** The schedule of a later generation on W ranks. K, warmup and the LR/tau schedules depend on the data
 *  only through stepsPerEpoch, fixed at submit: no re-scan of the data folder on every recovery, and no
 *  change of K if the folder changes under a running job. */
export function scheduleForWorld(job: Job, W: number): ScheduleState {
  return scheduleFor(job.spec, W, job.schedule.stepsPerEpoch * job.schedule.globalBatch);
}

export interface JobResources {workers: number; minWorkers: number; globalBatch: number}

export function resourcesOf(spec: JobSpec): JobResources {
  const s = spec.spec as Record<string, any>;
  return {workers: s.resources.workers, minWorkers: s.resources.minWorkers, globalBatch: s.train.globalBatch};
}

/** The spec is resolved: every field is there, with its one default in contract/presets.json. */
export function checkpointPolicy(spec: JobSpec): {everySteps: number; keepLast: number; keepEvery: number} {
  const c = (spec.spec as Record<string, any>).checkpoint;
  return {everySteps: c.everySteps, keepLast: c.keepLast, keepEvery: c.keepEvery};
}
