#!/usr/bin/env node
/**
 * Writes test/vectors/spec-resolution.json from the TypeScript resolver (the built dist/: run `npm run build`
 * first): job documents and what resolving each gives, the resolved document or its issues [path, message].
 * jest (test/spec-vectors.test.ts) and pytest (worker-py/tests/test_spec_vectors.py) each hold their resolver
 * to the file. Data paths are relative to test/vectors (tiny .npy files in spec-data/), written as <base>;
 * YAML's non-finite numbers, which JSON cannot hold, as the strings "__Infinity__", "__-Infinity__", "__NaN__".
 *   node scripts/make-spec-vectors.js
 */
const {writeFileSync} = require('node:fs');
const {join, resolve} = require('node:path');
const {resolveSpec, SpecError} = require('../dist/orchestrator/src/spec');

const BASE = resolve(__dirname, '..', 'test', 'vectors');
const head = {apiVersion: 'byol/v1', kind: 'PretrainJob', metadata: {name: 'v'}};
const doc = (spec, over = {}) => ({...head, ...over, spec});
const synth = {format: 'synthetic', numSamples: 64};
const npy = {format: 'npy', path: 'spec-data'};

const CASES = {
  // the documents of the former parity test
  good: doc({preset: 'byol-cifar', data: npy, resources: {workers: 2}, optimizer: {baseLr: 0.5}}),
  goodSynthetic: doc({data: synth}, {metadata: {name: 's', priority: 3}}),
  badTypes: doc({data: npy, train: {globalBatch: 'x', epochs: -1}, optimizer: {baseLr: 0}}),
  unknown: doc({data: {...npy, foo: 2}, bar: {}}, {extra: 1}),
  enums: doc({data: {format: 'tfrecord'}, train: {precision: 'fp8'}}, {kind: 'Job', metadata: {name: 'Bad_Name'}}),
  arrays: doc({data: {format: 'synthetic'}, augment: {view1: {cropScale: [0.1], cropRatio: [1, 2, 3]}, normalize: {mean: [1, 2]}}}),
  missing: doc({}, {metadata: {}}),
  workers: doc({data: synth, resources: {workers: 2, minWorkers: 3}}),
  noData: doc({data: {format: 'npy', path: '/nonexistent/byol-data'}}),
  nonFinite: doc({data: synth, train: {epochs: Infinity, globalBatch: 2}, optimizer: {baseLr: NaN},
    augment: {normalize: {mean: [0.5, -Infinity, 0.5]}}}),
  maxima: doc({data: {format: 'synthetic', loaderWorkers: 65, numSamples: 1e9}, train: {globalBatch: 1048576, epochs: 20000},
    model: {width: 8, projector: {hiddenDim: 1e9, outDim: 100000}, predictor: {hiddenDim: 20000}}, resources: {workers: 5000, minWorkers: 5000}}),
  // a minimal document per preset: every default and preset value
  presetImagenet: doc({data: synth}),
  presetCifar: doc({preset: 'byol-cifar', data: synth}),
  presetCifarShort: doc({preset: 'byol-cifar-short', data: synth}),
  // checkpoint retention fields
  retention: doc({data: synth, checkpoint: {everySteps: 5, keepLast: 2, keepEvery: 10}}),
  retentionZeroKeep: doc({data: synth, checkpoint: {keepLast: 0}}),
  // the rules: defaultFrom, atMost, requiredUnless, paths
  defaultFromGiven: doc({data: {...npy, evalPath: './spec-data/../spec-data'}, resources: {workers: 4, minWorkers: 2}}),
  atMostEqual: doc({data: synth, resources: {workers: 3, minWorkers: 3}}),
  requiredPath: doc({data: {format: 'image-folder'}}),
  absolutePath: doc({data: {format: 'npy', path: join(BASE, 'spec-data')}}),
  syntheticWithPath: doc({data: {...synth, path: 'anything'}}),
};

/** Strings: the base folder as <base>; numbers: the non-finite ones as marker strings. */
function encode(x) {
  if (typeof x === 'number' && !Number.isFinite(x)) return `__${x}__`;
  if (typeof x === 'string') return x.split(BASE).join('<base>');
  if (Array.isArray(x)) return x.map(encode);
  if (x !== null && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, encode(v)]));
  return x;
}

const cases = Object.entries(CASES).map(([name, d]) => {
  try {
    return {name, doc: encode(d), resolved: encode(resolveSpec(d, {baseDir: BASE}))};
  } catch (e) {
    if (!(e instanceof SpecError)) throw e;
    return {name, doc: encode(d), issues: e.issues.map((i) => [i.path, encode(i.message)])};
  }
});
const rows = cases.map((c) => `  ${JSON.stringify(c)}`).join(',\n');
const out = join(BASE, 'spec-resolution.json');
writeFileSync(out, `{"_comment": "made by scripts/make-spec-vectors.js from the TypeScript resolver; <base> is test/vectors",\n "cases": [\n${rows}\n ]}\n`);
process.stderr.write(`wrote ${cases.length} cases to ${out}\n`);
