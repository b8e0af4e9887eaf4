/**
 * REST access as an attacker probes it, against a real coordinator and real servers on port 0:
 * unauthenticated reads of specs, workers, events and exports; the listen refusal beyond loopback;
 * DNS-rebinding Host headers on a tokenless loopback server; bad %-encodings before and after auth;
 * hostile specs (.inf, .nan, 1e9 widths, step counts, YAML alias bombs) over REST and the CLI.
 */
import {afterAll, beforeAll, describe, expect, test} from '@jest/globals';
import {spawn} from 'node:child_process';
import {chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync} from 'node:fs';
import {request} from 'node:http';
import {tmpdir} from 'node:os';
import {join, resolve} from 'node:path';
import pino from 'pino';
import {startApiServer, type ApiServer} from '../orchestrator/src/api';
import type {CliIo} from '../orchestrator/src/cli/io';
import {runCli} from '../orchestrator/src/cli/parser';
import {SqliteStore} from '../orchestrator/src/store';
import {startTestCoordinator, tinySpec, type TestCoordinator} from './helpers/test-coordinator';

const logger = pino({level: 'silent'});
const TOKEN = 'rest-token-0123456789abcdef0123456789';
const auth = {authorization: `Bearer ${TOKEN}`};
let c: TestCoordinator;
let guarded: ApiServer; // token set
let open: ApiServer; // loopback, no token
let jobId: string;

/** A raw HTTP request, so the Host header and the path go out exactly as written. */
function raw(port: number, path: string, headers: Record<string, string> = {}, method = 'GET', body?: string): Promise<{status: number; body: any}> {
  return new Promise((resolve, reject) => {
    const req = request({host: '127.0.0.1', port, path, method, headers, setHost: !('host' in headers)}, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({status: res.statusCode ?? 0, body: text.startsWith('{') || text.startsWith('[') ? JSON.parse(text) : text}));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function cli(args: string[]): Promise<{code: number; err: string}> {
  let err = '';
  const io: CliIo = {out: () => undefined, err: (t) => void (err += t), isTTY: false};
  const code = await runCli(args, {io, signal: new AbortController().signal});
  process.exitCode = undefined;
  return {code, err};
}

beforeAll(async () => {
  c = await startTestCoordinator();
  guarded = await startApiServer({api: c.api, logger, port: 0, token: TOKEN, registry: c.registry});
  open = await startApiServer({api: c.api, logger, port: 0, registry: c.registry});
  jobId = c.api.submit(tinySpec({name: 'victim', workers: 1})).id;
});
afterAll(async () => {
  await guarded?.close();
  await open?.close();
  await c?.cleanup();
});

describe('with a token, nothing but the probes answers a stranger', () => {
  test('specs, workers, events, checkpoints, metrics, export, openapi and Prometheus: 401 without the token', async () => {
    const paths = ['/v1/jobs', `/v1/jobs/${jobId}`, `/v1/jobs/${jobId}/metrics`, `/v1/jobs/${jobId}/checkpoints`, `/v1/jobs/${jobId}/events`,
      `/v1/jobs/${jobId}/export`, '/v1/workers', '/openapi.json', '/metrics'];
    for (const path of paths) {
      const r = await raw(guarded.port, path);
      expect([path, r.status, r.body.code]).toEqual([path, 401, 'unauthorized']);
      expect(JSON.stringify(r.body)).not.toContain('victim');
    }
    const sse = await raw(guarded.port, `/v1/jobs/${jobId}/events`, {accept: 'text/event-stream'});
    expect(sse.status).toBe(401);
    for (const path of ['/healthz', '/readyz']) expect((await raw(guarded.port, path)).status).toBe(200);
    const withToken = await raw(guarded.port, `/v1/jobs/${jobId}`, auth);
    expect(withToken.status).toBe(200);
    expect(withToken.body.spec.metadata.name).toBe('victim');
  });

  test('/metrics is public only when asked for (--metrics-public); the rest stays closed', async () => {
    const s = await startApiServer({api: c.api, logger, port: 0, token: TOKEN, registry: c.registry, metricsPublic: true});
    try {
      expect((await raw(s.port, '/metrics')).status).toBe(200);
      expect((await raw(s.port, '/v1/jobs')).status).toBe(401);
    } finally {
      await s.close();
    }
  });

  test('a bad %-encoding in a job id: 401 for a stranger (auth first), 400 naming it for the token holder', async () => {
    for (const bad of ['%E0%A4%A', '%', '%zz']) {
      expect((await raw(guarded.port, `/v1/jobs/${bad}`)).status).toBe(401);
      const r = await raw(guarded.port, `/v1/jobs/${bad}/metrics`, auth);
      expect([bad, r.status]).toEqual([bad, 400]);
      expect(r.body.error).toMatch(/path parameter id has a bad %-encoding/);
    }
    expect((await raw(open.port, '/v1/jobs/%E0%A4%A')).status).toBe(400);
  });

  test('a request target that is no URL (GET http://[) is 400, and the server lives on', async () => {
    for (const s of [guarded, open]) {
      const r = await raw(s.port, 'http://[', s === guarded ? auth : {});
      expect(r.status).toBe(400);
      expect(r.body.error).toMatch(/is not a valid URL path/);
      expect((await raw(s.port, '/healthz')).status).toBe(200);
    }
  });
});

describe('a tokenless server stays on loopback and answers loopback names only', () => {
  test('serve --host 0.0.0.0 without a token exits 2 and says how to fix it; --insecure-no-token is the explicit opt-out', async () => {
    const saved = process.env.BYOL_API_TOKEN;
    delete process.env.BYOL_API_TOKEN;
    try {
      const r = await cli(['serve', '--host', '0.0.0.0', '--port', '0', '--home', join(c.dir, 'serve-home'), '--launcher', 'external', '--agent-token', TOKEN]);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/REST API would listen on 0\.0\.0\.0 without an API token.*BYOL_API_TOKEN.*--insecure-no-token/);

      const ctrl = new AbortController();
      let err = '';
      const io: CliIo = {out: () => undefined, err: (t) => void (err += t), isTTY: false};
      const running = runCli(['serve', '--host', '0.0.0.0', '--port', '0', '--insecure-no-token', '--home', join(c.dir, 'serve-open'),
        '--grpc-host', '127.0.0.1', '--grpc-port', '0', '--telemetry-port', '0', '--launcher', 'external', '--agent-token', TOKEN], {io, signal: ctrl.signal});
      while (!/REST http:\/\/0\.0\.0\.0:(\d+),/.test(err)) await new Promise((res) => setTimeout(res, 20));
      const port = Number(/REST http:\/\/0\.0\.0\.0:(\d+),/.exec(err)![1]);
      expect((await raw(port, '/v1/jobs', {host: 'any.example'})).status).toBe(200); // opted out: open, no Host check
      ctrl.abort();
      expect(await running).toBe(0);
      process.exitCode = undefined;
    } finally {
      if (saved !== undefined) process.env.BYOL_API_TOKEN = saved;
    }
  });

  test('DNS rebinding: a Host that is not loopback is refused (403) on every route; loopback names pass', async () => {
    const p = open.port;
    for (const host of [`evil.example:${p}`, 'evil.example', `127.0.0.1.evil.example:${p}`, `localhost:${p + 1}`, '']) {
      for (const path of ['/v1/jobs', `/v1/jobs/${jobId}`, '/healthz']) {
        const r = await raw(p, path, {host});
        expect([host, path, r.status]).toEqual([host, path, 403]);
        expect(r.body.code).toBe('bad_host');
      }
    }
    const post = await raw(p, '/v1/jobs', {host: `rebind.example:${p}`, 'content-type': 'application/json'}, 'POST', JSON.stringify(tinySpec({name: 'rebound'})));
    expect(post.status).toBe(403);
    expect(c.api.listJobs().some((j) => j.name === 'rebound')).toBe(false);
    for (const host of [`127.0.0.1:${p}`, `localhost:${p}`, `LOCALHOST:${p}`]) expect([host, (await raw(p, '/v1/jobs', {host})).status]).toEqual([host, 200]);
    // A token is the protection beyond that: the guarded server takes any Host.
    expect((await raw(guarded.port, '/v1/workers', {...auth, host: 'coordinator.internal'})).status).toBe(200);
  });
});

describe('hostile specs are 400 naming the field over REST, exit 2 from the CLI, and store nothing', () => {
  const yamlDoc = (train: string, model = '') => `apiVersion: byol/v1
kind: PretrainJob
metadata: {name: hostile}
spec:
  preset: byol-cifar
  data: {format: synthetic, numSamples: 512}
  train: ${train}
${model}`;
  const cases: [string, string, RegExp][] = [
    ['.inf epochs', yamlDoc('{epochs: .inf}'), /spec\.train\.epochs: must be finite/],
    ['.nan epochs', yamlDoc('{epochs: .nan}'), /spec\.train\.epochs: must be finite/],
    ['-.inf seed', yamlDoc('{seed: -.inf}'), /spec\.train\.seed: must be finite/],
    ['hiddenDim 1e9', yamlDoc('{epochs: 1}', '  model: {projector: {hiddenDim: 1e9}}'), /spec\.model\.projector\.hiddenDim: must be <= 16384/],
    ['width 1e9', yamlDoc('{epochs: 1}', '  model: {width: 1e9, predictor: {hiddenDim: 100000}}'), /spec\.model\.predictor\.hiddenDim: must be <= 16384.*spec\.model\.width: must be <= 4/s],
    ['globalBatch 2^31', yamlDoc('{globalBatch: 2147483648}'), /spec\.train\.globalBatch: must be <= 65536/],
    ['epochs 1e6', yamlDoc('{epochs: 1e6}'), /spec\.train\.epochs: must be <= 10000/],
    ['workers 1e6', yamlDoc('{epochs: 1}', '  resources: {workers: 1000000}'), /spec\.resources\.workers: must be <= 4096/],
    ['1e8 samples x 10000 epochs', yamlDoc('{epochs: 10000, globalBatch: 2}').replace('numSamples: 512', 'numSamples: 100000000'),
      /spec\.train\.epochs: 10000 epochs of 50000000 steps make 500000000000 steps, over the maximum of 100000000/],
    ['alias bomb', `a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n` +
      `d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n`, /YAML cannot be expanded/],
  ];

  test.each(cases)('%s', async (_name, text, message) => {
    const before = c.api.listJobs().length;
    const r = await raw(guarded.port, '/v1/jobs', {...auth, 'content-type': 'application/yaml'}, 'POST', text);
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('invalid');
    expect(r.body.issues.map((i: {path: string; message: string}) => `${i.path}: ${i.message}`).join('\n')).toMatch(message);
    const file = join(c.dir, 'hostile.yaml');
    writeFileSync(file, text);
    const out = await cli(['submit', file, '--server', guarded.url, '--token', TOKEN]);
    expect(out.code).toBe(2);
    expect(out.err).toMatch(message);
    expect(c.api.listJobs().length).toBe(before);
  });
});

const MAIN = resolve(__dirname, '..', 'dist', 'orchestrator', 'src', 'cli', 'main.js');

(existsSync(MAIN) ? describe : describe.skip)('data the server cannot read', () => {
  test('an unreadable image folder is 400 naming the folder, from a real `byolctl serve` (run as nobody when root)', async () => {
    const root = process.getuid?.() === 0;
    const tmp = mkdtempSync(join(tmpdir(), 'byol-unreadable-'));
    const cls = join(tmp, 'imgs', 'cat');
    mkdirSync(cls, {recursive: true});
    writeFileSync(join(cls, 'a.jpg'), 'x');
    mkdirSync(join(tmp, 'home'));
    if (root) for (const p of [tmp, join(tmp, 'home')]) chownSync(p, 65534, 65534);
    chmodSync(tmp, 0o755);
    chmodSync(cls, 0);
    const child = spawn(process.execPath, [MAIN, 'serve', '--home', join(tmp, 'home'), '--port', '0', '--grpc-host', '127.0.0.1',
      '--grpc-port', '0', '--telemetry-port', '0', '--launcher', 'external', '--agent-token', TOKEN, '--api-token', TOKEN],
    {stdio: ['ignore', 'ignore', 'pipe'], ...(root ? {uid: 65534, gid: 65534} : {}), env: {...process.env, BYOL_API_TOKEN: ''}});
    try {
      let err = '';
      child.stderr.on('data', (d) => (err += d));
      const port = await new Promise<number>((res, rej) => {
        child.stderr.on('data', () => {
          const m = /REST http:\/\/127\.0\.0\.1:(\d+),/.exec(err);
          if (m) res(Number(m[1]));
        });
        child.on('exit', (code) => rej(new Error(`serve exited ${code}: ${err}`)));
      });
      const spec = {apiVersion: 'byol/v1', kind: 'PretrainJob', metadata: {name: 'unreadable'}, spec: {data: {format: 'image-folder', path: join(tmp, 'imgs')}}};
      const r = await raw(port, '/v1/jobs', {...auth, 'content-type': 'application/json'}, 'POST', JSON.stringify(spec));
      expect(r.status).toBe(400);
      expect(r.body.issues).toEqual([{path: 'spec.data.path', message: expect.stringContaining(`${cls} cannot be read (EACCES)`)}]);
    } finally {
      child.kill('SIGINT');
      chmodSync(cls, 0o755);
      rmSync(tmp, {recursive: true, force: true});
    }
  });
});

test('the store is created 0600 in a 0700 folder, and an old world-readable store is tightened', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'byol-store-'));
  try {
    const path = join(tmp, 'state', 'store.db');
    new SqliteStore(path).close();
    expect(statSync(join(tmp, 'state')).mode & 0o777).toBe(0o700);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    chmodSync(path, 0o644);
    new SqliteStore(path).close();
    expect(statSync(path).mode & 0o777).toBe(0o600);
  } finally {
    rmSync(tmp, {recursive: true, force: true});
  }
});
