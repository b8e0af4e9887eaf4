/**
 * The TypeScript and Python resolvers agree: same issues (path and wording) for bad documents, and
 * the same resolved spec and specHash for good ones. Runs the real worker package once.
 */
import {describe, expect, test} from '@jest/globals';
import {execFileSync} from 'node:child_process';
import {existsSync} from 'node:fs';
import {resolve} from 'node:path';
import {SpecError} from '../orchestrator/src/domain/errors';
import {resolveSpec, scheduleFor, specHash} from '../orchestrator/src/spec';

const REPO = resolve(__dirname, '..');
const PY = process.env.BYOL_PYTHON ?? resolve(REPO, '.venv', 'bin', 'python');
const DATA = process.env.BYOL_SHARED_DATA ?? resolve(REPO, '..', 'shared', 'data', 'cifar10-jpeg');

const base = {apiVersion: 'byol/v1', kind: 'PretrainJob', metadata: {name: 'c10'}};
const docs: Record<string, unknown> = {
  good: {...base, spec: {preset: 'byol-cifar', data: {format: 'npy', path: DATA}, resources: {workers: 2}, optimizer: {baseLr: 0.5}}},
  goodSynthetic: {...base, metadata: {name: 's', priority: 3}, spec: {data: {format: 'synthetic', numSamples: 64}}},
  badTypes: {...base, spec: {data: {format: 'npy', path: DATA}, train: {globalBatch: 'x', epochs: -1}, optimizer: {baseLr: 0}}},
  unknown: {...base, extra: 1, spec: {data: {format: 'npy', path: DATA, foo: 2}, bar: {}}},
  enums: {...base, kind: 'Job', metadata: {name: 'Bad_Name'}, spec: {data: {format: 'tfrecord'}, train: {precision: 'fp8'}}},
  arrays: {...base, spec: {data: {format: 'synthetic'}, augment: {view1: {cropScale: [0.1], cropRatio: [1, 2, 3]}, normalize: {mean: [1, 2]}}}},
  missing: {...base, metadata: {}, spec: {}},
  workers: {...base, spec: {data: {format: 'synthetic'}, resources: {workers: 2, minWorkers: 3}}},
  noData: {...base, spec: {data: {format: 'npy', path: '/nonexistent/byol-data'}}},
  nonFinite: {...base, spec: {data: {format: 'synthetic'}, train: {epochs: Infinity, globalBatch: 2}, optimizer: {baseLr: NaN},
    augment: {normalize: {mean: [0.5, -Infinity, 0.5]}}}},
  maxima: {...base, spec: {data: {format: 'synthetic', loaderWorkers: 65, numSamples: 1e9}, train: {globalBatch: 1048576, epochs: 20000},
    model: {width: 8, projector: {hiddenDim: 1e9, outDim: 100000}, predictor: {hiddenDim: 20000}}, resources: {workers: 5000, minWorkers: 5000}}},
};

/** JSON with Infinity / NaN kept as Python's json module reads them (JSON.stringify would send null). */
function toPythonJson(x: unknown): string {
  return JSON.stringify(x, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? `__nonfinite_${v}__` : v))
    .replace(/"__nonfinite_(Infinity|-Infinity|NaN)__"/g, '$1');
}

function tsResult(doc: unknown): unknown {
  try {
    const s = resolveSpec(doc, {baseDir: REPO});
    return {ok: true, hash: specHash(s), spec: s};
  } catch (e) {
    if (!(e instanceof SpecError)) throw e;
    return {ok: false, issues: e.issues.map((i) => [i.path, i.message])};
  }
}

const PY_SCRIPT = `
import json, sys
from byol_worker.spec import SpecError, plan, resolve, spec_hash
out = {}
for name, doc in json.load(sys.stdin).items():
    try:
        s = resolve(doc, base_dir=sys.argv[1])
        out[name] = {"ok": True, "hash": spec_hash(s), "spec": s}
    except SpecError as e:
        out[name] = {"ok": False, "issues": [list(i) for i in e.issues]}
plans = {}
for W, N in [(1, 20000), (2, 20000), (4, 20000), (3, 20000), (2, 100), (8, 1000)]:
    try:
        plans[f"{W}/{N}"] = plan(out["good"]["spec"], W, N)
    except SpecError as e:
        plans[f"{W}/{N}"] = {"issues": [list(i) for i in e.issues]}
print(json.dumps({"resolved": out, "plans": plans}))
`;

function tsPlan(spec: any, W: number, N: number): unknown {
  try {
    return scheduleFor(spec, W, N);
  } catch (e) {
    if (!(e instanceof SpecError)) throw e;
    return {issues: e.issues.map((i) => [i.path, i.message])};
  }
}

(existsSync(PY) ? describe : describe.skip)('TypeScript and Python spec resolution agree', () => {
  test('issues, resolved specs and hashes', () => {
    const {resolved: py, plans} = JSON.parse(execFileSync(PY, ['-c', PY_SCRIPT, REPO], {input: toPythonJson(docs), encoding: 'utf8'}));
    for (const [name, doc] of Object.entries(docs)) {
      expect({name, ...(tsResult(doc) as object)}).toEqual({name, ...py[name]});
    }
    // Schedule numbers (and the errors for W not dividing B, or B larger than N) agree too.
    const good = resolveSpec(docs.good, {baseDir: REPO});
    for (const [key, p] of Object.entries(plans as Record<string, unknown>)) {
      const [W, N] = key.split('/').map(Number);
      expect({key, plan: tsPlan(good, W, N)}).toEqual({key, plan: p});
    }
  });
});
