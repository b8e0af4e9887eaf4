/** specHash: sha256 of the canonical JSON of a resolved spec (object keys sorted, no whitespace). */
import {createHash} from 'node:crypto';

/** JSON with object keys sorted at every level, so equal specs give equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value as object)
      .sort()
      .filter((k) => (value as any)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as any)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Computed here only: the Assignment carries it (spec_hash) and the worker records it in checkpoints. */
export function specHash(spec: unknown): string {
  return createHash('sha256').update(canonicalJson(spec)).digest('hex');
}
