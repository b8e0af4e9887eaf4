/**
 * The TypeScript resolver against the shared vectors (test/vectors/spec-resolution.json, written by
 * scripts/make-spec-vectors.js); worker-py/tests/test_spec_vectors.py holds the Python resolver to the same
 * file, so each suite checks its own side and nothing is skipped.
 */
import {describe, expect, test} from '@jest/globals';
import {readFileSync} from 'node:fs';
import {resolve} from 'node:path';
import {resolveSpec, SpecError} from '../orchestrator/src/spec';

const BASE = resolve(__dirname, 'vectors');
const NON_FINITE: Record<string, number> = {__Infinity__: Infinity, '__-Infinity__': -Infinity, __NaN__: NaN};

/** The file's encoding undone: <base> is this checkout's test/vectors, marker strings are non-finite numbers. */
function decode(x: unknown): unknown {
  if (typeof x === 'string') return x in NON_FINITE ? NON_FINITE[x] : x.split('<base>').join(BASE);
  if (Array.isArray(x)) return x.map(decode);
  if (x !== null && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, decode(v)]));
  return x;
}

interface Case {name: string; doc: unknown; resolved?: unknown; issues?: [string, string][]}
const {cases} = JSON.parse(readFileSync(resolve(BASE, 'spec-resolution.json'), 'utf8')) as {cases: Case[]};

describe('spec resolution matches the shared vectors', () => {
  test('the vectors cover every preset, the rules and both outcomes', () => {
    expect(cases.length).toBeGreaterThanOrEqual(20);
    expect(cases.filter((c) => c.issues).length).toBeGreaterThanOrEqual(8);
  });
  test.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    let got: unknown;
    try {
      got = {resolved: resolveSpec(decode(c.doc), {baseDir: BASE})};
    } catch (e) {
      if (!(e instanceof SpecError)) throw e;
      got = {issues: e.issues.map((i) => [i.path, i.message])};
    }
    expect(got).toEqual(c.issues ? {issues: decode(c.issues)} : {resolved: decode(c.resolved)});
  });
});
