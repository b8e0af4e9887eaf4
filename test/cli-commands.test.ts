/**
 * byolctl commands run in-process through the exported parser, against a real coordinator and REST
 * server (--server), plus `plan` offline and `serve`. Checks output, exit codes and that bad input
 * changes nothing.
 */
import {afterAll, afterEach, beforeAll, describe, expect, test} from '@jest/globals';
import {existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join, resolve} from 'node:path';
import pino from 'pino';
import {startApiServer, type ApiServer} from '../orchestrator/src/api';
import {followJob} from '../orchestrator/src/cli/follow';
import {runCli} from '../orchestrator/src/cli/parser';
import {ByolClient} from '../orchestrator/src/client';
import {loadSpecFile, resolveSpec, specHash} from '../orchestrator/src/spec';
import type {CliIo} from '../orchestrator/src/cli/io';
import {startCoordinator, type RunningCoordinator} from '../orchestrator/src/coordinator/start';

const DATA = process.env.BYOL_SHARED_DATA ?? resolve(__dirname, '..', '..', 'shared', 'data', 'cifar10-jpeg');
const logger = pino({level: 'silent'});
let dir: string;
let coord: RunningCoordinator;
let rest: ApiServer;

interface Captured {
  code: number;
  out: string;
  err: string;
}

async function cli(args: string[], o: {signal?: AbortSignal; server?: boolean} = {}): Promise<Captured> {
  let out = '';
  let err = '';
  const io: CliIo = {out: (t) => void (out += t), err: (t) => void (err += t), isTTY: false};
  const full = o.server === false ? args : [...args, '--server', rest.url];
  const code = await runCli(full, {io, signal: o.signal});
  process.exitCode = undefined; // keep jest's own exit code clean
  return {code, out, err};
}

function specFile(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

const good = (name: string, extra = '') => `apiVersion: byol/v1
kind: PretrainJob
metadata: {name: ${name}}
spec:
  preset: byol-cifar
  data: {format: npy, path: ${DATA}}
  train: {epochs: 2}
${extra}`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'byol-cli-'));
  coord = await startCoordinator({storePath: join(dir, 'store.db'), checkpointRoot: join(dir, 'ckpt'), agentToken: 'agent-token-0123456789',
    launcher: 'external', grpcHost: '127.0.0.1', grpcPort: 0, telemetryPort: 0, logger});
  rest = await startApiServer({api: coord.api, logger, port: 0});
});
afterEach(() => {
  process.exitCode = undefined;
});
afterAll(async () => {
  await rest?.close();
  await coord?.close();
  rmSync(dir, {recursive: true, force: true});
});

describe('bad specs exit 2 naming the field, and store nothing', () => {
  test.each([
    ['wrong type', good('a', '  resources: {workers: two}'), /spec\.resources\.workers: must be an integer/],
    ['negative LR', good('a', '  optimizer: {baseLr: -0.5}'), /spec\.optimizer\.baseLr: must be > 0/],
    ['unknown field', good('a', '  colour: blue'), /spec\.colour: unknown field/],
    ['missing data path', good('a').replace(DATA, join(DATA, 'nope')), /spec\.data\.path: .*nope\/train_images\.npy not found; for CIFAR run/],
    ['minWorkers > workers', good('a', '  resources: {workers: 2, minWorkers: 4}'), /spec\.resources\.minWorkers: must be <= spec\.resources\.workers \(2\)/],
    ['YAML syntax error', 'apiVersion: byol/v1\nmetadata: {name: x\nspec: [\n', /line \d+, column \d+: YAML syntax error/],
    ['oversized file', `# ${'x'.repeat(1024 * 1024)}\n${good('a')}`, /spec file is \d+ bytes, over the 1048576 byte limit/],
  ])('%s', async (name, text, pattern) => {
    const f = specFile(`${name.replace(/\W+/g, '-')}.yaml`, text);
    const before = coord.api.listJobs().length;
    const r = await cli(['submit', f]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(pattern);
    expect(r.err).toContain(f); // the file is named
    expect(coord.api.listJobs()).toHaveLength(before);
  });
});

describe('job commands against a server', () => {
  test('submit, status, list, logs, checkpoints, cancel; JSON on every read command', async () => {
    const f = specFile('good.yaml', good('cli-job'));
    const sub = await cli(['submit', f, '--json']);
    expect(sub.code).toBe(0);
    const job = JSON.parse(sub.out);
    expect(job).toMatchObject({name: 'cli-job', state: 'QUEUED', totalSteps: 156});

    const human = await cli(['submit', f]);
    expect(human.out).toMatch(/^submitted job cli-job-[0-9a-f]{6}: 156 steps; follow it with `byolctl logs -f cli-job-/);

    expect(JSON.parse((await cli(['status', job.id, '--json'])).out)).toMatchObject({id: job.id, state: 'QUEUED'});
    expect((await cli(['status', job.id])).out).toMatch(/state: +QUEUED[\s\S]*schedule: +K 156, warmup 155, peak LR 1, tau base 0\.99, B 256/);
    expect(JSON.parse((await cli(['status', '--json'])).out).jobs.map((j: {id: string}) => j.id)).toContain(job.id);
    const list = await cli(['list', '--state', 'queued', '--json']);
    expect(JSON.parse(list.out).map((j: {id: string}) => j.id)).toContain(job.id);
    expect((await cli(['list'])).out).toMatch(new RegExp(`^ID +STATE +STEP[\\s\\S]*${job.id} +QUEUED +0/156`, 'm'));
    expect((await cli(['logs', job.id])).out).toMatch(/INFO  submitted +submitted: 1 rank\(s\), 156 steps, global batch 256/);
    expect(JSON.parse((await cli(['logs', job.id, '--json'])).out)[0]).toMatchObject({type: 'submitted', jobId: job.id});
    expect((await cli(['checkpoints', job.id])).out).toBe(`job ${job.id} has no checkpoints yet\n`);
    expect(JSON.parse((await cli(['checkpoints', job.id, '--json'])).out)).toEqual([]);

    expect(await cli(['cancel', job.id])).toMatchObject({code: 0, out: `job ${job.id} CANCELLED at step 0/156\n`});
    const again = await cli(['cancel', job.id]);
    expect(again.code).toBe(2);
    expect(again.err).toMatch(/already CANCELLED/);
    const exp = await cli(['export', job.id, '--out', join(dir, 'enc.pt')]);
    expect(exp.code).toBe(2);
    expect(exp.err).toMatch(/no good checkpoint yet/);
  });

  test('submit --wait exits 1 when the job ends cancelled; --follow prints events', async () => {
    const f = specFile('wait.yaml', good('waiter'));
    const waiting = cli(['submit', f, '--follow']);
    let id: string | undefined;
    while (!id) {
      await new Promise((r) => setTimeout(r, 20));
      id = coord.api.listJobs().find((j) => j.name === 'waiter')?.id;
    }
    setTimeout(() => coord.api.cancel(id!), 100);
    const r = await waiting;
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/INFO  submitted/);
    expect(r.out).toMatch(/state +QUEUED -> CANCELLED/);
    expect(r.out).toMatch(new RegExp(`job ${id} CANCELLED: cancelled by a user\\n$`));
  });

  test('logs -f stops with 130 on Ctrl-C', async () => {
    const job = coord.api.submit({apiVersion: 'byol/v1', kind: 'PretrainJob', metadata: {name: 'interrupt'},
      spec: {preset: 'byol-cifar', data: {format: 'synthetic', numSamples: 512}}});
    const ctrl = new AbortController();
    setTimeout(() => ctrl.abort(), 200);
    const r = await cli(['logs', job.id, '-f'], {signal: ctrl.signal});
    expect(r.code).toBe(130);
    expect(r.err).toBe('interrupted\n');
    coord.api.cancel(job.id);
  });

  test('not found exits 3, no server exits 4, usage errors exit 2', async () => {
    expect(await cli(['status', 'nope'])).toMatchObject({code: 3, err: 'error: job nope not found\n'});
    const closed = await startApiServer({api: coord.api, logger, port: 0});
    await closed.close();
    const r = await cli(['list', '--server', closed.url], {server: false});
    expect(r.code).toBe(4);
    expect(r.err).toMatch(/cannot reach the byol server/);
    expect((await cli(['frobnicate'])).code).toBe(2);
    expect((await cli(['submit', 'x.yaml', '--wait', '--follow'])).err).toMatch(/mutually exclusive/);
  });

  test('--debug prints the stack and the cause', async () => {
    const closed = await startApiServer({api: coord.api, logger, port: 0});
    await closed.close();
    const r = await cli(['list', '--debug', '--server', closed.url], {server: false});
    expect(r.err).toMatch(/^ServerUnreachableError: cannot reach[\s\S]*\n {4}at [\s\S]*caused by: TypeError: fetch failed/);
  });
});

describe('plan (offline)', () => {
  test('numbers by hand: N 20000, B 256 -> 78 steps/epoch; 2 epochs -> K 156', async () => {
    const f = specFile('plan.yaml', good('planned', '  checkpoint: {everySteps: 50}'));
    const r = await cli(['plan', f, '--workers', '4', '--at', '100', '--json'], {server: false});
    expect(r.code).toBe(0);
    const p = JSON.parse(r.out);
    expect(p).toMatchObject({datasetSize: 20000, stepsPerEpoch: 78, totalSteps: 156, warmupSteps: 155, microBatch: 64, accumulation: 1,
      checkpointCount: 4, peakLr: 1});
    expect(p.at.map((a: {step: number}) => a.step)).toEqual([0, 155, 78, 100]);
    // lr(100) = 100 / 155 (still warming up); tau(78) = 1 - 0.01 * (cos(pi/2) + 1) / 2 = 0.995
    expect(p.at[3].lr).toBeCloseTo(100 / 155, 15);
    expect(p.at[2].tau).toBeCloseTo(0.995, 15);
    const human = await cli(['plan', f], {server: false});
    expect(human.out).toMatch(/steps +78 per epoch x 2 epochs = 156 \(warmup 155\)/);
    expect(human.out).toMatch(/batch +B 256 = 1 worker\(s\) x 256 micro-batch x 1 accumulation/);
  });
  test('workers that do not divide B exit 2 naming both fields', async () => {
    const f = specFile('plan3.yaml', good('planned'));
    const r = await cli(['plan', f, '--workers', '3'], {server: false});
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/spec\.train\.globalBatch: 256 cannot be split over spec\.resources\.workers = 3; worker counts that divide it: 1, 2, 4/);
  });
  test('--resolved prints the resolved document and the hash the coordinator would give it', async () => {
    const f = specFile('plan-resolved.yaml', good('resolved-one'));
    const r = await cli(['plan', f, '--resolved'], {server: false});
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.out);
    expect(Object.keys(doc).sort()).toEqual(['apiVersion', 'kind', 'metadata', 'spec', 'specHash']);
    const {specHash: hash, ...resolved} = doc;
    expect(resolved).toEqual(resolveSpec(loadSpecFile(f), {baseDir: dir}));
    expect(hash).toBe(specHash(resolved));
    expect(doc.spec.data.evalPath).toBe(resolve(DATA)); // paths absolute, defaults filled: Python uses it as is
  });
});

describe('serve', () => {
  test('starts the coordinator and REST on the given ports, stops on Ctrl-C with 0', async () => {
    const home = join(dir, 'serve-home');
    const ctrl = new AbortController();
    let err = '';
    const io: CliIo = {out: () => undefined, err: (t) => void (err += t), isTTY: false};
    const running = runCli(['serve', '--home', home, '--port', '0', '--grpc-host', '127.0.0.1', '--grpc-port', '0', '--telemetry-port', '0',
      '--launcher', 'external', '--agent-token', 'agent-token-0123456789', '--api-token', 'api-token-0123456789'], {io, signal: ctrl.signal});
    while (!/REST (http:\S+),/.test(err)) await new Promise((r) => setTimeout(r, 20));
    const url = /REST (http:\S+),/.exec(err)![1];
    expect(await (await fetch(`${url}/readyz`)).json()).toEqual({ready: true});
    expect((await fetch(`${url}/v1/jobs`, {method: 'POST', body: '{}', headers: {'content-type': 'application/json'}})).status).toBe(401);
    ctrl.abort();
    expect(await running).toBe(0);
    process.exitCode = undefined;
  });
  test('an external launcher without an agent token is refused', async () => {
    const saved = process.env.BYOL_AGENT_TOKEN;
    delete process.env.BYOL_AGENT_TOKEN;
    try {
      const r = await cli(['serve', '--launcher', 'external', '--home', join(dir, 'h2')], {server: false});
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/an agent token is required with --launcher external: .*--agent-token-file FILE or BYOL_AGENT_TOKEN/);
    } finally {
      if (saved !== undefined) process.env.BYOL_AGENT_TOKEN = saved;
    }
  });
});

describe('embedded mode discovery', () => {
  test('with no --server, a live coordinator started from this home (server.json) is used', async () => {
    const home = join(dir, 'discover');
    mkdirSync(home, {recursive: true});
    writeFileSync(join(home, 'server.json'), JSON.stringify({url: rest.url, pid: process.pid}));
    const saved = process.env.BYOL_SERVER;
    delete process.env.BYOL_SERVER;
    try {
      const r = await cli(['list', '--json', '--home', home], {server: false});
      expect(r.code).toBe(0);
      expect(JSON.parse(r.out).length).toBe(coord.api.listJobs().length);
      expect(existsSync(join(home, 'store.db'))).toBe(false); // no coordinator of its own
    } finally {
      if (saved !== undefined) process.env.BYOL_SERVER = saved;
    }
  });
  test('a stale server.json (process gone) is ignored: an embedded coordinator opens the home store', async () => {
    const home = join(dir, 'stale');
    mkdirSync(home, {recursive: true});
    writeFileSync(join(home, 'server.json'), JSON.stringify({url: rest.url, pid: 2 ** 22 + 1}));
    const r = await cli(['list', '--home', home], {server: false});
    expect(r).toMatchObject({code: 0, out: 'no jobs\n'});
    expect(existsSync(join(home, 'store.db'))).toBe(true);
  });
});

describe('progress while following on a terminal', () => {
  test('a live progress line is drawn with carriage returns and cleared before events', async () => {
    const job = coord.api.submit({apiVersion: 'byol/v1', kind: 'PretrainJob', metadata: {name: 'tty'},
      spec: {preset: 'byol-cifar', data: {format: 'synthetic', numSamples: 512}}});
    let out = '';
    const io: CliIo = {out: (t) => void (out += t), err: () => undefined, isTTY: true};
    setTimeout(() => coord.api.cancel(job.id), 200);
    const final = await followJob(new ByolClient({server: rest.url}), job.id, io,
      {events: true, signal: new AbortController().signal, progressEveryMs: 20});
    expect(final.state).toBe('CANCELLED');
    expect(out).toMatch(/\r\x1b\[2KQUEUED +step 0\/2000  loss -  tau -  lr -  img\/s -  ETA -/);
    expect(out).toMatch(/\r\x1b\[2K\d{4}-\d\d-\d\d [\d:]+  INFO  state +QUEUED -> CANCELLED/);
    expect(out.endsWith(`job ${job.id} CANCELLED: cancelled by a user\n`)).toBe(true);
  });
});
