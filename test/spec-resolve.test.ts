/** Spec loading and resolution (docs/internals.md "Spec resolution"): table-driven errors and the happy path. */
import {afterAll, beforeAll, describe, expect, test} from '@jest/globals';
import {mkdtempSync, mkdirSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join, resolve} from 'node:path';
import {SpecError} from '../orchestrator/src/domain/errors';
import {datasetSize, loadSpecFile, parseSpecText, resolveSpec, specHash} from '../orchestrator/src/spec';

const DATA = process.env.BYOL_SHARED_DATA ?? resolve(__dirname, '..', '..', 'shared', 'data', 'cifar10-jpeg');

function doc(spec: Record<string, unknown> = {}, metadata: Record<string, unknown> = {name: 'c10'}): any {
  return {apiVersion: 'byol/v1', kind: 'PretrainJob', metadata,
    spec: {preset: 'byol-cifar', data: {format: 'npy', path: DATA}, ...spec}};
}

function issuesOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(SpecError);
    return (e as SpecError).issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message));
  }
  throw new Error('expected a SpecError');
}

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'byol-spec-'));
});
afterAll(() => rmSync(tmp, {recursive: true, force: true}));

describe('resolveSpec errors name the field', () => {
  test.each([
    ['wrong type', doc({train: {globalBatch: 'big'}}), 'spec.train.globalBatch: must be an integer'],
    ['negative LR', doc({optimizer: {baseLr: -0.1}}), 'spec.optimizer.baseLr: must be > 0'],
    ['unknown field', doc({foo: 1}), 'spec.foo: unknown field'],
    ['unknown nested field', doc({model: {projector: {hidden: 3}}}), 'spec.model.projector.hidden: unknown field'],
    ['missing required', {...doc(), spec: {preset: 'byol-cifar'}}, 'spec.data: required field is missing'],
    ['bad enum', doc({data: {format: 'tfrecord', path: DATA}}), "spec.data.format: must be one of 'npy', 'image-folder', 'synthetic'"],
    ['bad name', doc({}, {name: 'Big_Name'}), 'metadata.name: must match ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'],
    ['wrong kind', {...doc(), kind: 'Job'}, "kind: must be 'PretrainJob'"],
    ['array item', doc({augment: {view1: {cropScale: [0.08, -1]}}}), 'spec.augment.view1.cropScale.1: must be >= 0'],
    ['minWorkers > workers', doc({resources: {workers: 2, minWorkers: 3}}), 'spec.resources.minWorkers: must be <= spec.resources.workers (2)'],
    ['npy without a path', doc({data: {format: 'npy'}}), "spec.data.path: required when spec.data.format is 'npy'"],
  ])('%s', (_name, d, expected) => {
    expect(issuesOf(() => resolveSpec(d))).toContain(expected);
  });

  test('missing data path says how to get the data, once', () => {
    const issues = issuesOf(() => resolveSpec(doc({data: {format: 'npy', path: 'no-such-dir'}}), {baseDir: tmp}));
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatch(/^spec\.data\.path: .*no-such-dir\/train_images\.npy not found; for CIFAR run `python -m byol_worker convert-cifar/);
  });

  test('a folder without train_images.npy is rejected', () => {
    expect(issuesOf(() => resolveSpec(doc({data: {format: 'npy', path: tmp}}))).join()).toMatch(/train_images\.npy not found/);
  });

  test('data outside the configured roots is rejected (docs/architecture.md §11)', () => {
    const issues = issuesOf(() => resolveSpec(doc(), {dataRoots: [tmp]}));
    expect(issues[0]).toMatch(/^spec\.data\.path: .* is outside the allowed data roots/);
  });

  test('a wrong label dtype or count is named', () => {
    const d = join(tmp, 'npy');
    mkdirSync(d, {recursive: true});
    // A minimal .npy v1.0 file: magic, version, header length, header dict padded to 64 bytes, then data.
    const npy = (descr: string, shape: number[], bytes: number) => {
      const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
      const header = dict.padEnd(64 - 10 - 1) + '\n';
      const len = Buffer.alloc(2);
      len.writeUInt16LE(header.length);
      return Buffer.concat([Buffer.from('\x93NUMPY\x01\x00', 'latin1'), len, Buffer.from(header, 'latin1'), Buffer.alloc(bytes)]);
    };
    writeFileSync(join(d, 'train_images.npy'), npy('|u1', [4, 2, 2, 3], 48));
    writeFileSync(join(d, 'train_labels.npy'), npy('<i8', [5], 40));
    const issues = issuesOf(() => resolveSpec(doc({data: {format: 'npy', path: d}, eval: {knn: {enabled: false}}})));
    expect(issues[0]).toMatch(/^spec\.data\.path: .*train_labels\.npy must be integer labels of shape \(4,\), found <i8 \(5\)/);
    writeFileSync(join(d, 'train_labels.npy'), npy('<i8', [4], 32));
    const s = resolveSpec(doc({data: {format: 'npy', path: d}, eval: {knn: {enabled: false}}}));
    expect(datasetSize(s)).toBe(4);
    // with the kNN monitor on, test_*.npy are required in evalPath
    expect(issuesOf(() => resolveSpec(doc({data: {format: 'npy', path: d}})))[0]).toMatch(/^spec\.data\.evalPath: .*test_images\.npy not found/);
  });

  test('every issue is reported at once', () => {
    expect(issuesOf(() => resolveSpec(doc({foo: 1, optimizer: {baseLr: 0}})))).toHaveLength(2);
  });
});

describe('resolveSpec happy path', () => {
  test('preset and defaults merge under the user document; minWorkers and evalPath filled', () => {
    const s = resolveSpec(doc({resources: {workers: 4}, optimizer: {weightDecay: 2e-5}}));
    expect(s.metadata).toEqual({name: 'c10'});
    expect(s.spec.preset).toBe('byol-cifar');
    expect(s.spec.optimizer).toMatchObject({baseLr: 1.0, lrScaling: 'none', weightDecay: 2e-5, momentum: 0.9});
    expect(s.spec.model.backbone).toBe('resnet18-cifar');
    expect(s.spec.augment.view2).toMatchObject({blurProb: 0.0, solarizeProb: 0.2});
    expect(s.spec.resources).toEqual({workers: 4, minWorkers: 4, device: 'auto', threadsPerWorker: 0});
    expect(s.spec.data.evalPath).toBe(s.spec.data.path);
    expect(JSON.stringify(s)).not.toMatch(/"_/); // comment keys dropped
  });

  test('relative paths resolve against baseDir; data under a root is allowed', () => {
    const root = resolve(DATA, '..');
    const s = resolveSpec(doc({data: {format: 'npy', path: 'cifar10-jpeg'}}), {baseDir: root, dataRoots: [root]});
    expect(s.spec.data.path).toBe(resolve(DATA));
  });

  test('default preset is byol-imagenet (linear LR scaling, B 4096)', () => {
    const s = resolveSpec({apiVersion: 'byol/v1', kind: 'PretrainJob', metadata: {name: 'x'}, spec: {data: {format: 'synthetic'}}});
    expect(s.spec.preset).toBeUndefined();
    expect(s.spec.train.globalBatch).toBe(4096);
    expect(datasetSize(s)).toBe(1024);
  });

  test('datasetSize reads the npy header: 20,000 cifar rows; counts image-folder files', () => {
    expect(datasetSize(resolveSpec(doc()))).toBe(20000);
    const folder = join(tmp, 'imgs');
    for (const c of ['cat', 'dog']) {
      mkdirSync(join(folder, c), {recursive: true});
      for (let i = 0; i < 3; i += 1) writeFileSync(join(folder, c, `${i}.jpg`), 'x');
      writeFileSync(join(folder, c, 'notes.txt'), 'not an image');
    }
    expect(datasetSize(resolveSpec(doc({data: {format: 'image-folder', path: folder}})))).toBe(6);
    expect(issuesOf(() => resolveSpec(doc({data: {format: 'image-folder', path: join(folder, 'cat')}})))[0])
      .toMatch(/cat has no class subfolders with \.jpg\/\.jpeg\/\.png images/);
  });

  test('specHash is stable under key order and changes with content', () => {
    const a = resolveSpec(doc());
    const reversed = (v: any): any =>
      v && typeof v === 'object' && !Array.isArray(v)
        ? Object.fromEntries(Object.keys(v).reverse().map((k) => [k, reversed(v[k])]))
        : v;
    const b = reversed(a);
    expect(JSON.stringify(b)).not.toBe(JSON.stringify(a));
    expect(specHash(b)).toBe(specHash(a));
    expect(specHash(a)).toMatch(/^[0-9a-f]{64}$/);
    expect(specHash(resolveSpec(doc({train: {seed: 1}})))).not.toBe(specHash(a));
  });
});

describe('loadSpecFile', () => {
  test('YAML syntax error names the file and the line', () => {
    const f = join(tmp, 'bad.yaml');
    writeFileSync(f, 'apiVersion: byol/v1\nkind: PretrainJob\nmetadata: {name: x\nspec: {}\n');
    expect(() => loadSpecFile(f)).toThrow(new RegExp(`^${f}: line \\d+, column \\d+: YAML syntax error: `));
  });
  test('oversized file is refused before parsing', () => {
    const f = join(tmp, 'big.yaml');
    writeFileSync(f, `# ${'x'.repeat(1024 * 1024)}\n`);
    expect(() => loadSpecFile(f)).toThrow(/big\.yaml: spec file is 1048579 bytes, over the 1048576 byte limit/);
  });
  test('missing file names the file', () => {
    expect(() => loadSpecFile(join(tmp, 'nope.yaml'))).toThrow(/nope\.yaml: cannot read spec file \(ENOENT\)/);
  });
  test('YAML and JSON parse to the same document', () => {
    expect(parseSpecText('a: {b: [1, 2]}')).toEqual(parseSpecText('{"a": {"b": [1, 2]}}'));
  });
});
