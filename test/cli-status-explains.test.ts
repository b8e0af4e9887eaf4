/**
 * What `byolctl status` and `byolctl logs` show, against a real coordinator, protocol-level agents over
 * real gRPC and a REST server on port 0: a job asking for more workers than exist is explained and does
 * not hold back a job that fits; text an agent makes up (escape sequences, fake lines) cannot drive the
 * user's terminal.
 */
import {afterAll, beforeAll, describe, expect, test} from '@jest/globals';
import pino from 'pino';
import {startApiServer, type ApiServer} from '../orchestrator/src/api';
import type {CliIo} from '../orchestrator/src/cli/io';
import {runCli} from '../orchestrator/src/cli/parser';
import {placeGangs} from '../orchestrator/src/placement/gang-placement';
import {startTestCoordinator, tinySpec, TEST_TOKEN, type TestCoordinator} from './helpers/test-coordinator';
import {TsAgent} from './helpers/ts-agent';
import {waitFor} from './helpers/wait';

let c: TestCoordinator;
let rest: ApiServer;
const agents: TsAgent[] = [];

async function cli(args: string[]): Promise<{code: number; out: string}> {
  let out = '';
  const io: CliIo = {out: (t) => void (out += t), err: (t) => void (out += t), isTTY: false};
  const code = await runCli([...args, '--server', rest.url], {io, signal: new AbortController().signal});
  process.exitCode = undefined;
  return {code, out};
}

beforeAll(async () => {
  c = await startTestCoordinator();
  rest = await startApiServer({api: c.api, logger: pino({level: 'silent'}), port: 0});
});
afterAll(async () => {
  for (const a of agents) a.close();
  await rest?.close();
  await c?.cleanup();
});

describe('a job bigger than the cluster', () => {
  test('placement: with the capacity known, a job needing more than exists does not block the queue', () => {
    const big = {id: 'big', priority: 5, submittedAtMs: 1, workers: 4, minWorkers: 4, resuming: false, globalBatch: 8};
    const small = {id: 'small', priority: 0, submittedAtMs: 2, workers: 1, minWorkers: 1, resuming: false, globalBatch: 8};
    const free = [{agentId: 'a', deviceId: 'cpu:0'}, {agentId: 'b', deviceId: 'cpu:0'}];
    expect(placeGangs([big, small], free)).toEqual([]); // unknown capacity: the big job waits first, as before
    expect(placeGangs([big, small], free, {capacity: 4}).map((p) => p.jobId)).toEqual([]); // it fits one day: still first
    expect(placeGangs([big, small], free, {capacity: 2}).map((p) => p.jobId)).toEqual(['small']);
  });

  test('status says why it waits; a later job that fits runs meanwhile; the message goes once agents join', async () => {
    agents.push(new TsAgent(c.grpcAddress, 'agent-0', TEST_TOKEN).connect());
    await waitFor('agent', () => c.api.workers().filter((w) => w.connected).length === 1);
    const big = c.api.submit(tinySpec({name: 'big', workers: 4, priority: 10}));
    const small = c.api.submit(tinySpec({name: 'small', workers: 1}));
    await waitFor('small scheduled', () => c.api.getJob(small.id)!.state === 'SCHEDULED');
    const r = await cli(['status', big.id]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/state: +QUEUED \(needs 4 workers but only 1 device\(s\) are connected; start more agents or lower spec\.resources\.workers/);
    c.api.cancel(small.id);
    agents.push(...[1, 2, 3].map((i) => new TsAgent(c.grpcAddress, `agent-${i}`, TEST_TOKEN).connect()));
    await waitFor('big scheduled', () => c.api.getJob(big.id)!.state === 'SCHEDULED');
    expect(c.api.getJob(big.id)!.message ?? '').not.toMatch(/needs 4 workers/);
    c.api.cancel(big.id);
  });
});

describe('agent text reaches the terminal inert', () => {
  test('escape sequences and fake lines in agent events and names are shown as \\xNN by logs and status', async () => {
    for (const a of agents.splice(0)) a.close(); // the hostile agent is the only one: it gets the job's rank
    await waitFor('others gone', () => c.api.workers().every((w) => !w.connected));
    const hostile = new TsAgent(c.grpcAddress, 'evil\x1b]0;pwned\x07', TEST_TOKEN).connect();
    agents.push(hostile);
    await waitFor('hostile agent', () => c.api.workers().some((w) => w.agentId.startsWith('evil') && w.connected));
    const job = c.api.submit(tinySpec({name: 'shown', workers: 1}));
    const generation = Number((await hostile.nextAssign({host: true, withAddress: false})).assign!.generation);
    // events count only from an agent that holds (or held) a rank of the job, as this one does
    hostile.send({event: {jobId: job.id, generation, level: 'warn', message: 'ok\x1b[2J\x1b[H\r\n2026-01-01 00:00:00  INFO  state      job SUCCEEDED\x9b31m'}});
    await waitFor('event stored', () => c.api.events(job.id).some((e) => e.type === 'agent'));
    const logs = await cli(['logs', job.id]);
    expect(logs.code).toBe(0);
    const line = logs.out.split('\n').find((l) => l.includes(' agent '))!;
    // the coordinator already turned control characters into '?' (a newline stays); the CLI escapes the newline,
    // so the fake line stays on the real one
    expect(line).toContain('ok?[2J?[H?\\x0a2026-01-01 00:00:00  INFO  state      job SUCCEEDED?31m');
    const status = await cli(['status']);
    for (const out of [logs.out, status.out]) expect(out).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f]/);
    expect(status.out).toContain('evil\\x1b]0;pwned\\x07');
    c.api.cancel(job.id);
  });
});
