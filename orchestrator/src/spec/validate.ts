/**
 * Step 1 of spec resolution (docs/internals.md): JSON Schema validation with messages that name the
 * field path with dots (`spec.optimizer.baseLr: must be > 0`, `spec.foo: unknown field`). The wording
 * matches worker-py/byol_worker/spec.py word for word (test/vectors/spec-resolution.json holds both to it).
 */
import Ajv, {type ErrorObject} from 'ajv';
import type {FieldIssue} from '../domain/errors';
import schema from '../../../contract/job.schema.json';

// verbose: parentSchema tells "exactly N items" apart. strict: false because the published schema puts "description" beside "$ref" (valid draft-07).
const ajv = new Ajv({allErrors: true, strict: false, verbose: true});
const validateDoc = ajv.compile(schema as object);

/** The published JSON Schema of a job document (served by the REST API). */
export const JOB_SCHEMA: object = schema;

const TYPE_WORDS: Record<string, string> = {
  object: 'an object', array: 'an array', string: 'a string', number: 'a number',
  integer: 'an integer', boolean: 'a boolean', null: 'null',
};

/** "/spec/augment/view1/cropScale/0" -> "spec.augment.view1.cropScale.0" (as the Python side writes it). */
export function pointerToPath(pointer: string): string {
  return pointer.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~')).join('.');
}

function join(base: string, key: string): string {
  return base ? `${base}.${key}` : key;
}

/** A value as the spec messages show it: strings quoted with ', numbers as JSON. */
export function fmt(v: unknown): string {
  return typeof v === 'string' ? `'${v}'` : JSON.stringify(v);
}

function issueOf(e: ErrorObject): FieldIssue {
  const at = pointerToPath(e.instancePath);
  const p = e.params as Record<string, any>;
  const sch = e.parentSchema as Record<string, any> | undefined;
  switch (e.keyword) {
    case 'additionalProperties': return {path: join(at, p.additionalProperty), message: 'unknown field'};
    case 'required': return {path: join(at, p.missingProperty), message: 'required field is missing'};
    case 'type': return {path: at, message: `must be ${String(p.type).split(',').map((t) => TYPE_WORDS[t] ?? t).join(' or ')}`};
    case 'enum': return {path: at, message: `must be one of ${(p.allowedValues as unknown[]).map(fmt).join(', ')}`};
    case 'const': return {path: at, message: `must be ${fmt(p.allowedValue)}`};
    case 'minimum': return {path: at, message: `must be >= ${fmt(p.limit)}`};
    case 'maximum': return {path: at, message: `must be <= ${fmt(p.limit)}`};
    case 'exclusiveMinimum': return {path: at, message: `must be > ${fmt(p.limit)}`};
    case 'exclusiveMaximum': return {path: at, message: `must be < ${fmt(p.limit)}`};
    case 'pattern': return {path: at, message: `must match ${p.pattern}`};
    case 'minLength': return {path: at, message: p.limit === 1 ? 'must not be empty' : `must be at least ${p.limit} characters`};
    case 'maxLength': return {path: at, message: `must be at most ${p.limit} characters`};
    case 'minItems':
    case 'maxItems':
      if (sch && sch.minItems === sch.maxItems) return {path: at, message: `must have exactly ${p.limit} items`};
      return {path: at, message: `must have ${e.keyword === 'minItems' ? 'at least' : 'at most'} ${p.limit} items`};
    default: return {path: at, message: e.message ?? 'is invalid'};
  }
}

/** Paths of the non-finite numbers (YAML `.inf`, `.nan`), which JSON Schema cannot refuse by itself. */
function nonFinitePaths(x: unknown, at: string, out: string[]): string[] {
  if (typeof x === 'number' && !Number.isFinite(x)) out.push(at);
  else if (Array.isArray(x)) x.forEach((v, i) => nonFinitePaths(v, join(at, String(i)), out));
  else if (x !== null && typeof x === 'object') for (const [k, v] of Object.entries(x)) nonFinitePaths(v, join(at, k), out);
  return out;
}

/** "must be finite" for each `.inf` / `.nan` in a parsed document (JSON cannot carry them, so check before sending). */
export function finiteIssues(doc: unknown): FieldIssue[] {
  return nonFinitePaths(doc, '', []).map((path) => ({path, message: 'must be finite'}));
}

/** All schema violations of `doc`, sorted by path then message, without duplicates; [] when valid. */
export function schemaIssues(doc: unknown): FieldIssue[] {
  const infinite = nonFinitePaths(doc, '', []);
  if (infinite.length === 0 && validateDoc(doc)) return [];
  if (infinite.length > 0) validateDoc(doc);
  const byKey = new Map<string, FieldIssue>();
  for (const path of infinite) byKey.set(`${path}\0must be finite`, {path, message: 'must be finite'});
  for (const e of validateDoc.errors ?? []) {
    const issue = issueOf(e);
    if (infinite.includes(issue.path)) continue; // "must be finite" says it; a bound on Infinity adds nothing
    byKey.set(`${issue.path}\0${issue.message}`, issue);
  }
  // Same order as Python's sorted((path, message)) tuples (plain code-point comparison).
  return [...byKey.values()].sort((a, b) => cmp(a.path, b.path) || cmp(a.message, b.message));
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
