/**
 * REST API against the real coordinator (startCoordinator, external launcher, ports 0): submit over
 * JSON and YAML, spec errors as 400 with the resolver's messages, limits, routes, auth, SSE.
 */
import {afterAll, beforeAll, describe, expect, test} from '@jest/globals';
import {execFileSync} from 'node:child_process';
import {mkdtempSync, readFileSync, rmSync} from 'node:fs';
import https from 'node:https';
import {tmpdir} from 'node:os';
import {dirname, join, resolve} from 'node:path';
import pino from 'pino';
import {startApiServer, type ApiServer} from '../orchestrator/src/api';
import {startCoordinator, type RunningCoordinator} from '../orchestrator/src/coordinator/start';
import {SpecError} from '../orchestrator/src/domain/errors';
import type {JobEvent} from '../orchestrator/src/domain/types';
import {resolveSpec} from '../orchestrator/src/spec';

const DATA = process.env.BYOL_SHARED_DATA ?? resolve(__dirname, '..', '..', 'shared', 'data', 'cifar10-jpeg');
const logger = pino({level: 'silent'});

let dir: string;
let coord: RunningCoordinator;
let rest: ApiServer;

function doc(spec: Record<string, unknown> = {}, name = 'c10'): any {
  return {apiVersion: 'byol/v1', kind: 'PretrainJob', metadata: {name},
    spec: {preset: 'byol-cifar', data: {format: 'npy', path: DATA}, train: {epochs: 1}, ...spec}};
}

async function post(body: string, type = 'application/json', headers: Record<string, string> = {}, url = rest.url) {
  const r = await fetch(`${url}/v1/jobs`, {method: 'POST', body, headers: {'content-type': type, ...headers}});
  return {status: r.status, body: await r.json() as any};
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'byol-api-'));
  coord = await startCoordinator({
    storePath: join(dir, 'store.db'), checkpointRoot: join(dir, 'ckpt'), dataRoots: [dirname(DATA)], agentToken: 'agent-secret-0123456789',
    launcher: 'external', grpcHost: '127.0.0.1', grpcPort: 0, telemetryPort: 0, logger,
  });
  rest = await startApiServer({api: coord.api, logger, port: 0, registry: coord.registry, sseKeepAliveMs: 50});
});
afterAll(async () => {
  await rest?.close();
  await coord?.close();
  rmSync(dir, {recursive: true, force: true});
});

describe('jobs', () => {
  test('submit JSON -> 201 JobView; get, list, cancel, cancel again -> 409', async () => {
    const r = await fetch(`${rest.url}/v1/jobs`, {method: 'POST', body: JSON.stringify(doc()), headers: {'content-type': 'application/json'}});
    expect(r.status).toBe(201);
    const job = await r.json() as any;
    expect(job).toMatchObject({name: 'c10', state: 'QUEUED', totalSteps: 78});
    expect(r.headers.get('location')).toBe(`/v1/jobs/${job.id}`);
    expect(await (await fetch(`${rest.url}/v1/jobs/${job.id}`)).json()).toMatchObject({id: job.id});
    const list = await (await fetch(`${rest.url}/v1/jobs?state=queued`)).json() as any[];
    expect(list.map((j) => j.id)).toContain(job.id);
    const del = await fetch(`${rest.url}/v1/jobs/${job.id}`, {method: 'DELETE'});
    expect(del.status).toBe(200);
    expect((await del.json() as any).state).toBe('CANCELLED');
    const again = await fetch(`${rest.url}/v1/jobs/${job.id}`, {method: 'DELETE'});
    expect(again.status).toBe(409);
    expect(await again.json()).toMatchObject({code: 'conflict', error: expect.stringMatching(/already CANCELLED/)});
  });

  test('submit YAML with content-type application/yaml', async () => {
    const yaml = `apiVersion: byol/v1\nkind: PretrainJob\nmetadata: {name: from-yaml}\nspec:\n  preset: byol-cifar\n  data: {format: synthetic, numSamples: 512}\n`;
    const r = await post(yaml, 'application/yaml');
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({name: 'from-yaml', totalSteps: 2000});
  });

  test('unknown job -> 404 on every per-job route', async () => {
    for (const path of ['', '/metrics', '/checkpoints', '/events', '/export']) {
      const r = await fetch(`${rest.url}/v1/jobs/nope${path}`);
      expect([path, r.status]).toEqual([path, 404]);
      expect(await r.json()).toEqual({error: 'job nope not found', code: 'not_found'});
    }
  });

  test('metrics and checkpoints of a new job are empty lists; bad query -> 400 naming it', async () => {
    const {body: job} = await post(JSON.stringify(doc({}, 'empty')));
    expect(await (await fetch(`${rest.url}/v1/jobs/${job.id}/metrics?sinceStep=0&limit=5`)).json()).toEqual([]);
    expect(await (await fetch(`${rest.url}/v1/jobs/${job.id}/checkpoints`)).json()).toEqual([]);
    const bad = await fetch(`${rest.url}/v1/jobs/${job.id}/metrics?limit=-1`);
    expect(bad.status).toBe(400);
    expect((await bad.json() as any).issues).toEqual([{path: 'limit', message: 'must be a non-negative integer'}]);
    const exp = await fetch(`${rest.url}/v1/jobs/${job.id}/export`);
    expect(exp.status).toBe(409);
    expect((await exp.json() as any).error).toMatch(/no good checkpoint yet/);
  });
});

describe('bad specs: 400 with the resolver\'s messages, nothing stored', () => {
  const cases: [string, any][] = [
    ['wrong type', doc({train: {globalBatch: 'x'}})],
    ['negative LR', doc({optimizer: {baseLr: -1}})],
    ['unknown field', doc({foo: 1})],
    ['missing data path', doc({data: {format: 'npy', path: join(dirname(DATA), 'missing')}})],
    ['minWorkers > workers', doc({resources: {workers: 1, minWorkers: 2}})],
    ['data outside the roots', doc({data: {format: 'npy', path: tmpdir()}})],
  ];
  test.each(cases)('%s', async (_name, d) => {
    const before = (await (await fetch(`${rest.url}/v1/jobs`)).json() as any[]).length;
    const r = await post(JSON.stringify(d));
    let expected: SpecError | undefined;
    try {
      resolveSpec(d, {baseDir: dirname(DATA), dataRoots: [dirname(DATA)]});
    } catch (e) {
      expected = e as SpecError;
    }
    expect(expected).toBeInstanceOf(SpecError);
    expect(r.status).toBe(400);
    expect(r.body).toEqual({error: expected!.message, code: 'invalid', issues: expected!.issues});
    expect((await (await fetch(`${rest.url}/v1/jobs`)).json() as any[]).length).toBe(before);
  });

  test('YAML syntax error names the line', async () => {
    const r = await post('apiVersion: byol/v1\nmetadata: {name: x\n', 'application/yaml');
    expect(r.status).toBe(400);
    expect(r.body.issues[0].message).toMatch(/^line \d+, column \d+: YAML syntax error/);
  });
  test('invalid JSON, oversized body, wrong content type', async () => {
    expect((await post('{nope')).status).toBe(400);
    const big = await post(JSON.stringify({pad: 'x'.repeat(1024 * 1024)}));
    expect(big).toMatchObject({status: 413, body: {code: 'too_large'}});
    expect((await post('x', 'text/plain')).status).toBe(415);
  });
});

describe('service routes', () => {
  test('healthz, readyz, openapi, metrics, workers, unknown route, wrong method', async () => {
    expect(await (await fetch(`${rest.url}/healthz`)).json()).toEqual({ok: true});
    expect((await fetch(`${rest.url}/readyz`)).status).toBe(200);
    const api = await (await fetch(`${rest.url}/openapi.json`)).json() as any;
    expect(api.openapi).toBe('3.1.0');
    expect(Object.keys(api.paths)).toEqual(expect.arrayContaining(['/v1/jobs', '/v1/jobs/{id}', '/v1/jobs/{id}/events', '/v1/jobs/{id}/export', '/metrics']));
    const prom = await (await fetch(`${rest.url}/metrics`)).text();
    expect(prom).toMatch(/byol_jobs\{state="QUEUED"\} \d+/);
    expect(await (await fetch(`${rest.url}/v1/workers`)).json()).toEqual([]);
    expect((await fetch(`${rest.url}/v2/nothing`)).status).toBe(404);
    const r = await fetch(`${rest.url}/healthz`, {method: 'POST'});
    expect(r.status).toBe(405);
    expect(r.headers.get('allow')).toBe('GET');
  });
});

describe('auth', () => {
  test('with a token set, every route but the probes needs it', async () => {
    const s = await startApiServer({api: coord.api, logger, port: 0, token: 's3cret-token-0123456789'});
    try {
      expect((await post(JSON.stringify(doc({}, 'auth1')), 'application/json', {}, s.url)).status).toBe(401);
      expect((await post(JSON.stringify(doc({}, 'auth1')), 'application/json', {authorization: 'Bearer wrong'}, s.url)).status).toBe(401);
      const ok = await post(JSON.stringify(doc({}, 'auth1')), 'application/json', {authorization: 'Bearer s3cret-token-0123456789'}, s.url);
      expect(ok.status).toBe(201);
      expect((await fetch(`${s.url}/v1/jobs/${ok.body.id}`, {method: 'DELETE'})).status).toBe(401);
      expect((await fetch(`${s.url}/v1/jobs/${ok.body.id}`)).status).toBe(401);
      expect((await fetch(`${s.url}/v1/jobs/${ok.body.id}`, {headers: {authorization: 'Bearer s3cret-token-0123456789'}})).status).toBe(200);
      expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    } finally {
      await s.close();
    }
  });
  test('beyond loopback without a token the server refuses to start, unless opted out', async () => {
    await expect(startApiServer({api: coord.api, logger, host: '0.0.0.0', port: 0})).rejects.toThrow(/without an API token.*--insecure-no-token/);
    const s = await startApiServer({api: coord.api, logger, host: '0.0.0.0', port: 0, insecureNoToken: true});
    try {
      expect((await fetch(`http://127.0.0.1:${s.port}/v1/jobs`)).status).toBe(200);
    } finally {
      await s.close();
    }
  });
});

describe('TLS', () => {
  test('with a certificate the API speaks HTTPS only', async () => {
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], {stdio: 'ignore'});
    const s = await startApiServer({api: coord.api, logger, port: 0, tls: {cert: readFileSync(cert), key: readFileSync(key)}});
    try {
      expect(s.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const body = await new Promise<string>((resolve, reject) => {
        https.get(`${s.url}/healthz`, {ca: readFileSync(cert)}, (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve(text));
        }).on('error', reject);
      });
      expect(JSON.parse(body)).toEqual({ok: true});
      await expect(fetch(`http://127.0.0.1:${s.port}/healthz`)).rejects.toThrow(); // plain HTTP is not spoken
    } finally {
      await s.close();
    }
  });
});

/** Reads server-sent events until `until` says stop or the stream ends. */
async function readSse(res: Response, until: (evs: {id?: string; event?: string; data: string}[]) => boolean) {
  const out: {id?: string; event?: string; data: string}[] = [];
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let comments = 0;
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buf += decoder.decode(value, {stream: true});
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (block.startsWith(':')) comments += 1;
      const ev: any = {data: ''};
      for (const line of block.split('\n')) {
        const [k, ...rest] = line.split(': ');
        if (k === 'id' || k === 'event' || k === 'data') ev[k] = rest.join(': ');
      }
      if (ev.data) out.push(ev);
    }
    if (until(out)) {
      await reader.cancel();
      break;
    }
  }
  return {events: out, comments};
}

describe('server-sent events', () => {
  test('replay, then live, then end on the terminal state; Last-Event-ID resumes', async () => {
    const {body: job} = await post(JSON.stringify(doc({}, 'sse')));
    const res = await fetch(`${rest.url}/v1/jobs/${job.id}/events`, {headers: {accept: 'text/event-stream'}});
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reading = readSse(res, () => false);
    await new Promise((r) => setTimeout(r, 150)); // long enough for keep-alives at 50 ms
    await fetch(`${rest.url}/v1/jobs/${job.id}`, {method: 'DELETE'});
    const {events, comments} = await reading;
    const jobEvents = events.filter((e) => !e.event).map((e) => JSON.parse(e.data) as JobEvent);
    expect(jobEvents[0].type).toBe('submitted');
    expect(jobEvents.some((e) => e.type === 'state' && e.data?.to === 'CANCELLED')).toBe(true);
    expect(events[events.length - 1]).toEqual({event: 'end', data: JSON.stringify({state: 'CANCELLED'})});
    expect(comments).toBeGreaterThanOrEqual(1);
    expect(jobEvents.map((e) => String(e.seq))).toEqual(events.filter((e) => !e.event).map((e) => e.id));

    // Resume after the first event: the rest are replayed, then the stream ends (job finished).
    const again = await fetch(`${rest.url}/v1/jobs/${job.id}/events`, {headers: {accept: 'text/event-stream', 'last-event-id': String(jobEvents[0].seq)}});
    const replay = (await readSse(again, () => false)).events.filter((e) => !e.event).map((e) => JSON.parse(e.data) as JobEvent);
    expect(replay).toEqual(jobEvents.slice(1));
    // Plain JSON list without the SSE accept header.
    expect(await (await fetch(`${rest.url}/v1/jobs/${job.id}/events?after=${jobEvents[0].seq}`)).json()).toEqual(jobEvents.slice(1));
  });
});
