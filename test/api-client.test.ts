/**
 * ByolClient against the real REST server and coordinator: named errors with their cause, and an event
 * stream that survives a dropped connection (reconnect with Last-Event-ID, nothing lost or repeated).
 */
import {afterAll, beforeAll, describe, expect, test} from '@jest/globals';
import {mkdtempSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import pino from 'pino';
import {startApiServer, type ApiServer} from '../orchestrator/src/api';
import {
  BadRequestError, ByolClient, ConflictError, NotFoundError, ServerError, ServerUnreachableError, SpecError, UnauthorizedError,
  toClientError, type FollowItem,
} from '../orchestrator/src/client';
import {startCoordinator, type RunningCoordinator} from '../orchestrator/src/coordinator/start';

const logger = pino({level: 'silent'});
let dir: string;
let coord: RunningCoordinator;
let rest: ApiServer;
let client: ByolClient;

const doc = (name: string, spec: Record<string, unknown> = {}) => ({apiVersion: 'byol/v1', kind: 'PretrainJob', metadata: {name},
  spec: {preset: 'byol-cifar', data: {format: 'synthetic', numSamples: 512}, ...spec}});

async function caught(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'byol-client-'));
  coord = await startCoordinator({storePath: join(dir, 'store.db'), checkpointRoot: join(dir, 'ckpt'), agentToken: 'agent-token-0123456789',
    launcher: 'external', grpcHost: '127.0.0.1', grpcPort: 0, telemetryPort: 0, logger});
  rest = await startApiServer({api: coord.api, logger, port: 0, token: 'tok'});
  client = new ByolClient({server: rest.url, token: 'tok'});
});
afterAll(async () => {
  await rest?.close();
  await coord?.close();
  rmSync(dir, {recursive: true, force: true});
});

describe('errors are named after the domain, cause kept', () => {
  test('404 -> NotFoundError naming the job', async () => {
    const err = await caught(client.jobs.get('nope'));
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err).toMatchObject({what: 'job', id: 'nope', message: 'job nope not found'});
  });
  test('400 spec -> SpecError with the issues', async () => {
    const err = await caught(client.jobs.submit(doc('bad', {optimizer: {baseLr: -1}, foo: 1})));
    expect(err).toBeInstanceOf(SpecError);
    expect((err as SpecError).issues).toEqual([
      {path: 'spec.foo', message: 'unknown field'},
      {path: 'spec.optimizer.baseLr', message: 'must be > 0'},
    ]);
  });
  test('409 -> ConflictError; YAML submit works', async () => {
    const job = await client.jobs.submit({yaml: 'apiVersion: byol/v1\nkind: PretrainJob\nmetadata: {name: y}\nspec: {preset: byol-cifar, data: {format: synthetic, numSamples: 512}}\n'});
    expect((await client.jobs.cancel(job.id)).state).toBe('CANCELLED');
    expect(await caught(client.jobs.cancel(job.id))).toBeInstanceOf(ConflictError);
  });
  test('401 -> UnauthorizedError without or with a wrong token', async () => {
    expect(await caught(new ByolClient({server: rest.url, token: 'wrong'}).jobs.submit(doc('x')))).toBeInstanceOf(UnauthorizedError);
    const saved = process.env.BYOL_API_TOKEN;
    delete process.env.BYOL_API_TOKEN;
    try {
      expect(await caught(new ByolClient({server: rest.url}).jobs.submit(doc('x')))).toBeInstanceOf(UnauthorizedError);
    } finally {
      if (saved !== undefined) process.env.BYOL_API_TOKEN = saved;
    }
  });
  test('413 -> BadRequestError with the status', async () => {
    const err = await caught(client.jobs.submit({...doc('big'), pad: 'x'.repeat(1024 * 1024)}));
    expect(err).toBeInstanceOf(BadRequestError);
    expect((err as BadRequestError).status).toBe(413);
    expect((err.cause as {status: number}).status).toBe(413);
  });
  test('nothing listening -> ServerUnreachableError with the network error as cause', async () => {
    const closed = await startApiServer({api: coord.api, logger, port: 0});
    await closed.close();
    const err = await caught(new ByolClient({server: closed.url}).jobs.list());
    expect(err).toBeInstanceOf(ServerUnreachableError);
    expect(err.message).toMatch(/cannot reach the byol server at http:\/\/127\.0\.0\.1:\d+; start one with `byolctl serve`/);
    expect((err.cause as Error).name).toBe('TypeError'); // fetch failed
  });
  test('the translation table itself (5xx and unknown statuses)', () => {
    const e500 = toClientError({server: 's', what: 'GET /x', status: 500, body: {error: 'internal error', code: 'internal'}});
    expect(e500).toBeInstanceOf(ServerError);
    expect(e500).toMatchObject({status: 500, code: 'internal', message: 'internal error'});
    expect(toClientError({server: 's', what: 'GET /x', status: 418, body: 'teapot'})).toMatchObject({status: 418, message: 'GET /x failed with HTTP 418'});
    expect(toClientError({server: 's', what: 'GET /x', status: 400, body: {error: 'q', code: 'bad_query'}})).toBeInstanceOf(BadRequestError);
  });
  test('server URL comes from BYOL_SERVER when no option is given', () => {
    const saved = process.env.BYOL_SERVER;
    process.env.BYOL_SERVER = 'http://example.invalid:9/';
    try {
      expect(new ByolClient().server).toBe('http://example.invalid:9');
      expect(new ByolClient({server: rest.url}).server).toBe(rest.url);
    } finally {
      if (saved === undefined) delete process.env.BYOL_SERVER;
      else process.env.BYOL_SERVER = saved;
    }
  });
});

describe('follow', () => {
  test('reconnects after the server drops the stream, with no event lost or repeated', async () => {
    const job = await client.jobs.submit(doc('follow'));
    const port = rest.port;
    const items: FollowItem[] = [];
    const following = (async () => {
      for await (const item of client.jobs.follow(job.id, {reconnectDelayMs: 50})) items.push(item);
    })();
    while (items.length === 0) await new Promise((r) => setTimeout(r, 10));
    await rest.close(); // cuts the open stream
    coord.api.cancel(job.id); // events while no server is up
    rest = await startApiServer({api: coord.api, logger, port, token: 'tok'});
    await following;
    const seqs = items.flatMap((i) => (i.kind === 'event' ? [i.event.seq] : []));
    const all = await client.jobs.events(job.id);
    expect(seqs).toEqual(all.map((e) => e.seq));
    expect(items[items.length - 1]).toEqual({kind: 'end', state: 'CANCELLED'});
  });
  test('unknown job -> NotFoundError, not a reconnect loop', async () => {
    const it = client.jobs.follow('nope', {reconnectDelayMs: 10});
    expect(await caught(it.next())).toBeInstanceOf(NotFoundError);
  });
});
