/**
 * Exhausting the REST server, as an attacker would try it, against a real coordinator, a protocol-level
 * agent over real gRPC and servers on port 0 with small limits: event-stream clients that never read,
 * too many streams and connections, slowloris headers and bodies, a huge JSON reply left unread, page
 * bounds, and exports past the concurrency limit racing checkpoint retention.
 */
import {afterAll, beforeAll, describe, expect, test} from '@jest/globals';
import {chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync} from 'node:fs';
import {createHash} from 'node:crypto';
import {connect, type Socket} from 'node:net';
import {join} from 'node:path';
import pino from 'pino';
import {startApiServer, type ApiServer} from '../orchestrator/src/api';
import {startTestCoordinator, tinySpec, TEST_TOKEN, type TestCoordinator} from './helpers/test-coordinator';
import {TS, TsAgent} from './helpers/ts-agent';
import {waitFor} from './helpers/wait';

const logger = pino({level: 'silent'});
const FLOOD = 9000; // about 17 MB of events: more than loopback socket buffers hold for a client that never reads
const EVENT_TEXT = 'x'.repeat(1900); // the coordinator keeps at most 2000 characters of an agent's event text
const limits = {maxQueuedBytes: 64 * 1024, maxStreams: 5, maxStreamsPerClient: 3, maxConnections: 50, maxConnectionsPerClient: 8,
  headersTimeoutMs: 1000, bodyTimeoutMs: 1000, idleTimeoutMs: 1500, maxExports: 2};
let c: TestCoordinator;
let rest: ApiServer;
let agent: TsAgent;
let jobId: string;
let generation: number;

/** A raw client: sends `head` (and maybe a body), never reads until `resume()`; records what arrives. */
function rawClient(port: number, head: string, localAddress = '127.0.0.1') {
  const s: Socket = connect({host: '127.0.0.1', port, localAddress});
  const got: Buffer[] = [];
  let closed = false;
  s.on('data', (d) => got.push(d));
  s.on('close', () => (closed = true));
  s.on('error', () => undefined);
  s.pause();
  s.write(head);
  return {
    socket: s,
    resume: () => s.resume(),
    text: () => Buffer.concat(got).toString('latin1'),
    closed: () => closed,
  };
}

const sseHead = (port: number, path: string) => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`;

beforeAll(async () => {
  c = await startTestCoordinator();
  agent = new TsAgent(c.grpcAddress, 'agent-0', TEST_TOKEN).connect();
  await waitFor('agent registered', () => c.api.workers().some((w) => w.connected));
  rest = await startApiServer({api: c.api, logger, port: 0, registry: c.registry, limits, sseKeepAliveMs: 200,
    pythonBin: join(c.dir, 'fake-python.sh')});
  jobId = c.api.submit(tinySpec({name: 'flooded', workers: 1, keepLast: 1})).id;
  generation = Number((await agent.nextAssign({host: true, withAddress: false})).assign!.generation);
  agent.send({rendezvous: {jobId, generation, address: '127.0.0.1:29999'}});
  await agent.nextAssign({withAddress: true});
  agent.trainer(jobId, generation, 0, TS.TRAINER_RUNNING);
});
afterAll(async () => {
  agent?.close();
  await rest?.close();
  await c?.cleanup();
});

describe('event streams', () => {
  test('a client that never reads is dropped once 64 KiB pile up; a reader gets every event', async () => {
    const port = Number(new URL(rest.url).port);
    const stalled = rawClient(port, sseHead(port, `/v1/jobs/${jobId}/events`));
    const res = await fetch(`${rest.url}/v1/jobs/${jobId}/events`, {headers: {accept: 'text/event-stream'}});
    const reader = res.body!.getReader();
    let seen = 0;
    const reading = (async () => {
      let text = '';
      while (seen < FLOOD) {
        const {value, done} = await reader.read();
        if (done) break;
        text += Buffer.from(value).toString('latin1');
        const parts = text.split(EVENT_TEXT);
        seen += parts.length - 1;
        text = parts[parts.length - 1];
      }
      await reader.cancel();
    })();
    for (let i = 0; i < FLOOD; i++) agent.send({event: {jobId, generation: 0, level: 'info', message: EVENT_TEXT}});
    await reading;
    expect(seen).toBe(FLOOD);
    await waitFor('stalled stream dropped', () => {
      stalled.resume(); // read what the kernel holds; the server has hung up
      return stalled.closed();
    }, 20_000);
    expect(stalled.text().split(EVENT_TEXT).length - 1).toBeLessThan(FLOOD);
    expect(stalled.text()).not.toContain('event: end');
  });

  test('at most 3 streams per client address and 5 in all: 429 beyond, and a freed slot is reusable', async () => {
    const port = Number(new URL(rest.url).port);
    const path = `/v1/jobs/${jobId}/events`;
    const mine = [1, 2, 3].map(() => rawClient(port, sseHead(port, path)));
    for (const m of mine) m.resume();
    await waitFor('3 streams open', () => mine.every((m) => m.text().startsWith('HTTP/1.1 200')));
    const fourth = rawClient(port, sseHead(port, path));
    fourth.resume();
    await waitFor('4th answered', () => /^HTTP\/1\.1 \d+/.test(fourth.text()));
    expect(fourth.text()).toMatch(/^HTTP\/1\.1 429[\s\S]*too many open event streams \(at most 3 per client, 5 in all\)/);
    const others = ['127.0.0.2', '127.0.0.2', '127.0.0.3'].map((addr) => rawClient(port, sseHead(port, path), addr));
    for (const o of others) o.resume();
    await waitFor('others answered', () => others.every((o) => /^HTTP\/1\.1 \d+/.test(o.text())));
    expect(others.map((o) => o.text().slice(9, 12))).toEqual(['200', '200', '429']);
    mine[0].socket.destroy();
    const again = rawClient(port, sseHead(port, path), '127.0.0.3');
    again.resume();
    await waitFor('slot reused', () => again.text().startsWith('HTTP/1.1 200'));
    for (const s of [...mine, fourth, ...others, again]) s.socket.destroy();
  });
});

describe('connections, slow clients, big replies', () => {
  test('past 8 connections from one address new ones are cut; idle ones go after the headers timeout', async () => {
    const s = await startApiServer({api: c.api, logger, port: 0, limits: {...limits, headersTimeoutMs: 4000}});
    try {
      const idle = Array.from({length: 8}, () => rawClient(s.port, ''));
      for (const k of idle) k.resume(); // reading, so the server's hang-up is seen
      await new Promise((r) => setTimeout(r, 300));
      const ninth = rawClient(s.port, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\n\r\n`);
      ninth.resume();
      await waitFor('9th cut', () => ninth.closed(), 10_000);
      expect(ninth.text()).toBe('');
      const other = await new Promise<string>((resolve) => { // another address still gets in
        const o = rawClient(s.port, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\nConnection: close\r\n\r\n`, '127.0.0.2');
        o.resume();
        o.socket.on('close', () => resolve(o.text()));
      });
      expect(other).toMatch(/^HTTP\/1\.1 200/);
      await waitFor('idle connections closed', () => idle.every((k) => k.closed()), 20_000);
      expect((await fetch(`${s.url}/healthz`)).status).toBe(200); // the slots are free again
    } finally {
      await s.close();
    }
  });

  test('60 clients pipelining 2000 GET /metrics each and never reading: REST stays responsive, each is cut', async () => {
    const s = await startApiServer({api: c.api, logger, port: 0, registry: c.registry, limits: {maxConnectionsPerClient: 64}});
    try {
      const burst = `GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\n\r\n`.repeat(2000);
      const attackers = Array.from({length: 60}, () => rawClient(s.port, burst));
      await new Promise((r) => setTimeout(r, 1000));
      // Before the pipelining cap the server spent minutes making replies nobody read, and /healthz waited.
      for (const path of ['/healthz', '/v1/jobs']) {
        expect((await fetch(`${s.url}${path}`, {signal: AbortSignal.timeout(20_000)})).status).toBe(200);
      }
      for (const k of attackers) k.resume();
      await waitFor('attackers cut', () => attackers.every((k) => k.closed()), 20_000);
      const replies = attackers.map((k) => k.text().split('HTTP/1.1 200').length - 1);
      expect(Math.max(...replies)).toBeLessThan(2000); // cut, not served to the end
    } finally {
      await s.close();
    }
  });

  test('slowloris: trickled headers get 408 and a closed connection; a trickled body gets 408 naming the deadline', async () => {
    const port = Number(new URL(rest.url).port);
    const headers = rawClient(port, `GET /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`);
    headers.resume();
    const drip = setInterval(() => headers.socket.write('X-Slow: 1\r\n'), 100);
    await waitFor('headers timed out', () => headers.closed(), 15_000);
    clearInterval(drip);
    expect(headers.text()).toMatch(/^HTTP\/1\.1 408/);

    const body = rawClient(port, `POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{`);
    body.resume();
    const drip2 = setInterval(() => body.socket.write(' '), 100);
    await waitFor('body timed out', () => body.closed(), 15_000);
    clearInterval(drip2);
    expect(body.text()).toMatch(/^HTTP\/1\.1 408[\s\S]*request body not complete after 1 s/);
  });

  test('a 17 MB reply left unread is dropped after the idle timeout; pages are bounded', async () => {
    await waitFor('flood stored', () => c.api.events(jobId, {limit: 10_000}).length >= FLOOD);
    const port = Number(new URL(rest.url).port);
    const big = rawClient(port, `GET /v1/jobs/${jobId}/events?limit=10000 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    await new Promise((r) => setTimeout(r, 3500)); // idle timeout 1.5 s, checked every second
    await waitFor('unread reply dropped', () => {
      big.resume();
      return big.closed();
    }, 20_000);
    const length = Number(/content-length: (\d+)/i.exec(big.text())![1]);
    expect(length).toBeGreaterThan(FLOOD * 1900);
    expect(big.text().length).toBeLessThan(length);

    const page = await (await fetch(`${rest.url}/v1/jobs/${jobId}/events`)).json() as unknown[];
    expect(page.length).toBe(1000);
    const tooBig = await fetch(`${rest.url}/v1/jobs/${jobId}/metrics?limit=10001`);
    expect(tooBig.status).toBe(400);
    expect((await tooBig.json() as any).error).toMatch(/limit must be <= 10000/);
  });
});

describe('exports', () => {
  test('a third concurrent export gets 429; running ones survive retention deleting their checkpoint', async () => {
    const gate = join(c.dir, 'export-gate');
    const started = join(c.dir, 'export-started');
    mkdirSync(started);
    // Stands in for `python -m byol_worker export`: records that it runs, waits for the test, copies model.pt.
    writeFileSync(join(c.dir, 'fake-python.sh'), `#!/bin/sh\ntouch "${started}/$$"\nwhile [ ! -e "${gate}" ]; do sleep 0.05; done\n` +
      'cat "$5/model.pt" > "$7"\n');
    chmodSync(join(c.dir, 'fake-python.sh'), 0o755);
    const save = (step: number, bytes: Buffer) => {
      const path = join(c.checkpointRoot, jobId, `step-${String(step).padStart(9, '0')}`);
      mkdirSync(path, {recursive: true});
      writeFileSync(join(path, 'model.pt'), bytes);
      const sha256 = createHash('sha256').update(bytes).digest('hex'); // the coordinator refuses anything else
      agent.send({checkpoint: {jobId, generation, step, ok: true, path, bytes: bytes.length, sha256}});
      return path;
    };
    const model2 = Buffer.from('weights at step 2 '.repeat(1000));
    const step2 = save(2, model2);
    await waitFor('checkpoint 2 registered', () => c.api.checkpoints(jobId).some((k) => k.step === 2 && k.state === 'ok'));

    const exports = [1, 2].map(() => fetch(`${rest.url}/v1/jobs/${jobId}/export`));
    await waitFor('two exports running', () => readdirSync(started).length === 2);
    const third = await fetch(`${rest.url}/v1/jobs/${jobId}/export`);
    expect(third.status).toBe(429);
    expect((await third.json() as any).error).toMatch(/2 exports are running, the most this server runs at once; retry when one finishes/);

    save(4, Buffer.from('weights at step 4'));
    await waitFor('retention deleted step 2', () => !existsSync(step2), 10_000);
    writeFileSync(gate, '');
    for (const r of await Promise.all(exports)) {
      expect(r.status).toBe(200);
      expect(r.headers.get('x-byol-step')).toBe('2');
      expect(Buffer.from(await r.arrayBuffer()).equals(model2)).toBe(true);
    }
    await waitFor('pins released', () => readdirSync(join(c.checkpointRoot, jobId)).every((n) => !n.startsWith('.export-')));
    const next = await fetch(`${rest.url}/v1/jobs/${jobId}/export`);
    expect(next.status).toBe(200);
    expect(Buffer.from(await next.arrayBuffer()).toString()).toBe(readFileSync(join(c.checkpointRoot, jobId, 'step-000000004', 'model.pt'), 'utf8'));
  });
});
