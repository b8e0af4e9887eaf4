/** Job specs: load, validate and resolve (docs/internals.md), dataset size, plan and hash. */
export {loadSpecFile, parseSpecText, MAX_SPEC_BYTES} from './load';
export {resolveSpec, datasetSize, type ResolveOptions} from './resolve';
export {planJob, type Plan} from './plan-job';
export {scheduleFor} from './schedule-for';
export {specHash, canonicalJson} from './hash';
export {schemaIssues, JOB_SCHEMA} from './validate';
export {SpecError} from '../domain/errors';
