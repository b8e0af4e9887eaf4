/**
 * Agent credentials and secrets (issue 11), as an attacker and a user would meet them: a holder of the
 * shared agent token cannot take over another agent's id (session keys); short tokens are refused; tokens
 * can come from files (the processes side: security-secrets-processes.test.ts).
 */
import {afterEach, describe, expect, test} from '@jest/globals';
import {writeFileSync} from 'node:fs';
import {join} from 'node:path';
import pino from 'pino';
import {startApiServer} from '../orchestrator/src/api';
import {runCli} from '../orchestrator/src/cli/parser';
import {startCoordinator} from '../orchestrator/src/coordinator/start';
import {killAllAgents, spawnPythonAgent} from './helpers/python-agent';
import {tempDir} from './helpers/temp';
import {startTestCoordinator, TEST_TOKEN, type TestCoordinator} from './helpers/test-coordinator';
import {TsAgent} from './helpers/ts-agent';
import {waitFor} from './helpers/wait';

const PERMISSION_DENIED = 7;
const coords: TestCoordinator[] = [];
const tsAgents: TsAgent[] = [];
afterEach(async () => {
  for (const a of tsAgents.splice(0)) a.close();
  await killAllAgents();
  for (const c of coords.splice(0)) await c.cleanup();
});

async function coordinator(): Promise<TestCoordinator> {
  const c = await startTestCoordinator();
  coords.push(c);
  return c;
}
function tsAgent(c: TestCoordinator, id: string, key = ''): TsAgent {
  const a = new TsAgent(c.grpcAddress, id, TEST_TOKEN).withSessionKey(key).connect();
  tsAgents.push(a);
  return a;
}

describe('per-agent session keys', () => {
  test('a holder of the shared token cannot claim a registered agent id without that id\'s key', async () => {
    const c = await coordinator();
    const victim = tsAgent(c, 'victim');
    await victim.next('welcome', (m) => Boolean(m.welcome));
    expect(victim.sessionKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const other = tsAgent(c, 'other');
    await other.next('welcome', (m) => Boolean(m.welcome));
    expect(other.sessionKey).not.toBe(victim.sessionKey);

    // No key, a forged key, and another agent's key: each refused with PERMISSION_DENIED and no Welcome.
    const attempts = [tsAgent(c, 'victim'), tsAgent(c, 'victim', 'A'.repeat(43)), tsAgent(c, 'victim', other.sessionKey)];
    const statuses = await Promise.all(attempts.map((a) => waitFor('refusal', () => a.status, 10_000)));
    expect(statuses.map((s) => s.code)).toEqual([PERMISSION_DENIED, PERMISSION_DENIED, PERMISSION_DENIED]);
    expect(statuses[0].details).toMatch(/agent id "victim" is taken: a reconnect must present the session key/);
    expect(statuses[1].details).toMatch(/session key does not belong to agent id "victim"/);
    for (const a of attempts) expect(a.inbox.some((m) => m.welcome)).toBe(false);
    // The victim keeps its stream: the coordinator still talks to it.
    expect(victim.status).toBeNull();
    expect(c.api.workers().filter((w) => w.agentId === 'victim').map((w) => w.connected)).toEqual([true]);

    // The real agent reconnecting with its key is welcomed and replaces its old stream (the check can pass).
    const again = tsAgent(c, 'victim', victim.sessionKey);
    await again.next('welcome', (m) => Boolean(m.welcome));
    await waitFor('old stream closed', () => victim.status);
  });

  test('a real Python agent claiming a live agent id is refused and does not take its place', async () => {
    const c = await coordinator();
    const victim = spawnPythonAgent(c.grpcAddress, 'py-victim', TEST_TOKEN);
    await waitFor('victim joined', () => c.api.workers().some((w) => w.agentId === 'py-victim' && w.connected), 60_000);
    const impostor = spawnPythonAgent(c.grpcAddress, 'py-victim', TEST_TOKEN, {host: '10.255.0.1'});
    await waitFor('impostor refused', () => /event=claim_refused/.test(impostor.output()), 60_000, 100);
    expect(impostor.output()).toMatch(/agent id \\?"py-victim\\?" is taken/);
    expect(c.api.workers().map((w) => [w.agentId, w.host, w.connected])).toEqual([['py-victim', '127.0.0.1', true]]);
    expect(victim.output()).not.toMatch(/stream_broken/);
  }, 90_000);
});

describe('tokens', () => {
  test('a token shorter than 16 characters is refused, from a file, the environment or the library', async () => {
    const dir = tempDir('byol-short-');
    const saved = {...process.env};
    try {
      const short = join(dir.path, 'agent-token');
      writeFileSync(short, 'hunter2\n', {mode: 0o600});
      let err = '';
      const io = {out: () => undefined, err: (t: string) => void (err += t), isTTY: false};
      const serve = ['serve', '--home', dir.path, '--port', '0', '--grpc-port', '0', '--telemetry-port', '0', '--launcher', 'external', '--grpc-host', '127.0.0.1'];
      expect(await runCli([...serve, '--agent-token-file', short], {io})).toBe(2);
      expect(err).toMatch(/--agent-token-file is 7 characters; use at least 16/);
      err = '';
      process.env.BYOL_AGENT_TOKEN = TEST_TOKEN;
      process.env.BYOL_API_TOKEN = 'short-api';
      expect(await runCli(serve, {io})).toBe(2);
      expect(err).toMatch(/BYOL_API_TOKEN is 9 characters; use at least 16/);
      await expect(startCoordinator({storePath: join(dir.path, 's.db'), agentToken: 'short-token', launcher: 'external',
        grpcHost: '127.0.0.1', grpcPort: 0, telemetryPort: 0, logger: pino({level: 'silent'})})).rejects.toThrow(/at least 16/);
    } finally {
      process.env = saved;
      process.exitCode = undefined;
      dir.cleanup();
    }
  });

  test('byolctl reads the API token from --token-file (BYOL_API_TOKEN_FILE), so it need not be on the command line', async () => {
    const c = await coordinator();
    const token = 'api-token-in-a-file-0123456789';
    const rest = await startApiServer({api: c.api, logger: pino({level: 'silent'}), port: 0, token});
    const dir = tempDir('byol-token-file-');
    const saved = process.env.BYOL_API_TOKEN;
    delete process.env.BYOL_API_TOKEN;
    try {
      const file = join(dir.path, 'token');
      writeFileSync(file, token + '\n', {mode: 0o600});
      const io = {out: () => undefined, err: () => undefined, isTTY: false};
      // cancel of an unknown job: 404 (exit 3) once authorised, 401 (exit 2) without the token.
      expect(await runCli(['--server', rest.url, '--token-file', file, 'cancel', 'no-such-job'], {io})).toBe(3);
      expect(await runCli(['--server', rest.url, 'cancel', 'no-such-job'], {io})).toBe(2);
      let err = '';
      expect(await runCli(['--server', rest.url, '--token-file', join(dir.path, 'missing'), 'cancel', 'x'],
        {io: {...io, err: (t: string) => void (err += t)}})).toBe(2);
      expect(err).toMatch(/--token-file .*missing: cannot read \(ENOENT\)/);
    } finally {
      if (saved !== undefined) process.env.BYOL_API_TOKEN = saved;
      process.exitCode = undefined;
      await rest.close();
      dir.cleanup();
    }
  });
});
