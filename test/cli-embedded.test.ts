/**
 * Embedded mode end to end: `byolctl submit` with no server starts the coordinator in-process with the
 * local launcher (real Python agent and trainer), follows the job to the end, stops; later commands see
 * the store; `export` writes an encoder that plain torch.load reads. A tiny npy dataset sits beside the
 * spec and is named by a relative path, which must resolve against the spec file's folder.
 */
import {afterAll, beforeAll, expect, test} from '@jest/globals';
import {execFileSync} from 'node:child_process';
import {existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join, resolve} from 'node:path';
import {runCli} from '../orchestrator/src/cli/parser';
import type {CliIo} from '../orchestrator/src/cli/io';

const PY = process.env.BYOL_PYTHON ?? resolve(__dirname, '..', '.venv', 'bin', 'python');
let dir: string;

/** A .npy v1.0 file with random bytes of the given dtype and shape. */
function npy(descr: string, shape: number[], itemBytes: number, fill: (i: number) => number): Buffer {
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const header = `${dict.padEnd(128 - 10 - 1)}\n`;
  const len = Buffer.alloc(2);
  len.writeUInt16LE(header.length);
  const n = shape.reduce((a, b) => a * b, 1);
  const data = Buffer.alloc(n * itemBytes);
  for (let i = 0; i < n; i += 1) {
    if (itemBytes === 1) data.writeUInt8(fill(i), i);
    else data.writeBigInt64LE(BigInt(fill(i)), i * 8);
  }
  return Buffer.concat([Buffer.from('\x93NUMPY\x01\x00', 'latin1'), len, Buffer.from(header, 'latin1'), data]);
}

async function cli(args: string[], onOut: (text: string) => void = () => undefined): Promise<{code: number; out: string; err: string}> {
  let out = '';
  let err = '';
  const io: CliIo = {out: (t) => { out += t; onOut(t); }, err: (t) => void (err += t), isTTY: false};
  const code = await runCli(args, {io});
  process.exitCode = undefined;
  return {code, out, err};
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'byol-embedded-'));
  const data = join(dir, 'data');
  mkdirSync(data);
  const seed = (i: number) => (i * 2654435761) % 256; // deterministic "random" pixels
  writeFileSync(join(data, 'train_images.npy'), npy('|u1', [64, 8, 8, 3], 1, seed));
  writeFileSync(join(data, 'train_labels.npy'), npy('<i8', [64], 8, (i) => i % 4));
  writeFileSync(join(data, 'test_images.npy'), npy('|u1', [16, 8, 8, 3], 1, (i) => seed(i + 7)));
  writeFileSync(join(data, 'test_labels.npy'), npy('<i8', [16], 8, (i) => i % 4));
  writeFileSync(join(dir, 'job.yaml'), `apiVersion: byol/v1
kind: PretrainJob
metadata: {name: embedded}
spec:
  preset: byol-cifar
  data: {format: npy, path: data, imageSize: 8, loaderWorkers: 0}
  model: {backbone: resnet18-cifar, width: 0.125, projector: {hiddenDim: 32, outDim: 16}, predictor: {hiddenDim: 32}}
  optimizer: {warmupEpochs: 0}
  train: {epochs: 1, globalBatch: 32, precision: fp32, logEverySteps: 1}
  resources: {workers: 1, device: cpu, threadsPerWorker: 1}
  checkpoint: {everySteps: 1, keepLast: 1}
  eval: {knn: {enabled: true, k: 5, temperature: 0.1}}
`);
});
afterAll(() => rmSync(dir, {recursive: true, force: true}));

test('submit trains here to the end; list, checkpoints and export work on the same home', async () => {
  const home = join(dir, 'home');
  // While the job runs, the printed dashboard URL serves the page and the job's plot data.
  let dashboard: Promise<[number, string, number, string]> | undefined;
  const sub = await cli(['submit', join(dir, 'job.yaml'), '--home', home], (t) => {
    const m = /^dashboard: (http:\S+)\/#\/job\/(\S+) /m.exec(t);
    if (m && !dashboard) {
      dashboard = (async () => {
        const page = await fetch(`${m[1]}/`);
        const series = await fetch(`${m[1]}/ui/api/jobs/${m[2]}/series?width=400`);
        return [page.status, await page.text(), series.status, await series.text()];
      })();
    }
  });
  expect(sub.err).toBe('');
  expect(sub.code).toBe(0);
  expect(sub.out).toMatch(/^submitted job (embedded-[0-9a-f]{6}): 2 steps \(embedded coordinator; Ctrl-C stops it\)/);
  expect(sub.out).toMatch(/\ndashboard: http:\/\/127\.0\.0\.1:\d+\/#\/job\/embedded-[0-9a-f]{6} \(live while the job runs\)\n/);
  expect(sub.out).toMatch(/state +RUNNING -> SUCCEEDED/);
  const [pageStatus, html, seriesStatus, series] = await dashboard!;
  expect([pageStatus, seriesStatus]).toEqual([200, 200]);
  expect(html).toMatch(/<script[^>]+src="\/ui\/app\.js"/);
  expect(JSON.parse(series)).toHaveProperty('scalars');
  const id = /submitted job (\S+):/.exec(sub.out)![1];
  expect(sub.out).toMatch(new RegExp(`job ${id} SUCCEEDED`));
  // the final kNN comes with the same kNN's baselines, measured by the trainer before its first step
  expect(sub.out).toMatch(/kNN top-1 accuracy of the trained encoder: \d+\.\d\d% \(same kNN before training: random init \d+\.\d\d%, raw pixels \d+\.\d\d%\)/);
  expect(existsSync(join(home, 'server.json'))).toBe(false); // the embedded coordinator stopped

  const list = JSON.parse((await cli(['list', '--json', '--home', home])).out);
  expect(list).toEqual([expect.objectContaining({id, state: 'SUCCEEDED', step: 2})]);
  expect(list[0].spec.spec.data.path).toBe(join(dir, 'data')); // relative to the spec file, not the cwd

  const cks = JSON.parse((await cli(['checkpoints', id, '--json', '--home', home])).out);
  expect(cks.filter((c: {state: string}) => c.state === 'ok').map((c: {step: number}) => c.step)).toEqual([2]);

  const out = join(dir, 'encoder.pt');
  const exp = await cli(['export', id, '--out', out, '--home', home]);
  expect(exp.code).toBe(0);
  expect(exp.out).toMatch(/^wrote .*encoder\.pt \(\d+ bytes, step 2\)/);
  const keys = execFileSync(PY, ['-c', 'import sys, torch; sd = torch.load(sys.argv[1], weights_only=True); print(len(sd), "conv1.weight" in sd)', out],
    {encoding: 'utf8'});
  expect(keys.trim()).toMatch(/^\d+ True$/);
});
