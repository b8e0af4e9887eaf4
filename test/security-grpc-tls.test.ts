/**
 * gRPC TLS as an attacker and a user would meet it (issue 11): a TLS coordinator with a real Python agent
 * training a tiny job; an agent trusting another CA refused; mTLS refusing an agent without a client
 * certificate and admitting one with a certificate; plaintext beyond loopback refused unless asked for.
 * Certificates are made per run with the openssl CLI (test/helpers/test-certs.ts).
 */
import {afterAll, afterEach, beforeAll, describe, expect, test} from '@jest/globals';
import {readFileSync} from 'node:fs';
import pino from 'pino';
import {runCli} from '../orchestrator/src/cli/parser';
import {startCoordinator} from '../orchestrator/src/coordinator/start';
import {waitForState} from './helpers/job-checks';
import {killAllAgents, spawnPythonAgent, type PythonAgent} from './helpers/python-agent';
import {tempDir} from './helpers/temp';
import {makeTestCerts, TEST_SERVER_NAME, type TestCerts} from './helpers/test-certs';
import {startTestCoordinator, tinySpec, TEST_TOKEN, type TestCoordinator} from './helpers/test-coordinator';
import {sleep, waitFor} from './helpers/wait';

let certs: TestCerts;
const coords: TestCoordinator[] = [];
beforeAll(() => {
  certs = makeTestCerts();
});
afterEach(async () => {
  await killAllAgents();
  for (const c of coords.splice(0)) await c.cleanup();
});
afterAll(() => certs?.cleanup());

const pem = (f: string) => readFileSync(f);
const serverTls = (clientCa?: string) => ({cert: pem(certs.serverCert), key: pem(certs.serverKey), ...(clientCa ? {clientCa: pem(clientCa)} : {})});

async function tlsCoordinator(clientCa?: string): Promise<TestCoordinator> {
  const c = await startTestCoordinator({grpcTls: serverTls(clientCa)});
  coords.push(c);
  return c;
}

/** The agent kept failing to connect (its redial log says why) and the coordinator never registered it. */
async function expectNeverJoins(c: TestCoordinator, a: PythonAgent, why: RegExp): Promise<void> {
  await waitFor(`${a.agentId} to report a failed stream`, () => /event=stream_broken/.test(a.output()), 60_000, 100);
  await sleep(1500); // a redial or two more
  expect(c.api.workers().map((w) => w.agentId)).not.toContain(a.agentId);
  expect(a.output()).toMatch(why);
  expect(a.child.exitCode).toBeNull(); // it keeps redialling: a transient misconfiguration heals itself
}

describe('gRPC over TLS', () => {
  test('a real Python agent verifies the coordinator (CA + server name) and trains a tiny job', async () => {
    const c = await tlsCoordinator();
    const agent = spawnPythonAgent(c.grpcAddress, 'tls-0', TEST_TOKEN,
      {args: ['--tls-ca', certs.caCert, '--tls-server-name', TEST_SERVER_NAME]});
    const job = c.api.submit(tinySpec({workers: 1, numSamples: 32, globalBatch: 8}));
    await waitForState(c, job.id, 'SUCCEEDED', [agent], 240_000);
    expect(c.api.getJob(job.id)!.step).toBe(job.totalSteps);
    expect(agent.output()).not.toMatch(/event=plaintext/);
  }, 300_000);

  test('an agent that trusts another CA, or dials in plaintext, is refused', async () => {
    const c = await tlsCoordinator();
    const wrongCa = spawnPythonAgent(c.grpcAddress, 'wrong-ca', TEST_TOKEN,
      {args: ['--tls-ca', certs.otherCaCert, '--tls-server-name', TEST_SERVER_NAME]});
    const plain = spawnPythonAgent(c.grpcAddress, 'plain', TEST_TOKEN);
    // A certificate that does not name the address dialled is refused too (no --tls-server-name).
    const wrongName = spawnPythonAgent(c.grpcAddress, 'wrong-name', TEST_TOKEN, {args: ['--tls-ca', certs.caCert]});
    await expectNeverJoins(c, wrongCa, /TLS failed: check --tls-ca/);
    await expectNeverJoins(c, plain, /event=stream_broken/);
    await expectNeverJoins(c, wrongName, /TLS failed: check --tls-ca/);
    // The same coordinator admits a correctly configured agent (the refusals above are not a broken server).
    const good = spawnPythonAgent(c.grpcAddress, 'good', TEST_TOKEN, {args: ['--tls-ca', certs.caCert, '--tls-server-name', TEST_SERVER_NAME]});
    await waitFor('the good agent to join', () => c.api.workers().some((w) => w.agentId === good.agentId && w.connected), 60_000);
  }, 120_000);

  test('mTLS: an agent without a client certificate is refused, one with a certificate from the client CA joins', async () => {
    const c = await tlsCoordinator(certs.caCert);
    const tls = ['--tls-ca', certs.caCert, '--tls-server-name', TEST_SERVER_NAME];
    const noCert = spawnPythonAgent(c.grpcAddress, 'no-cert', TEST_TOKEN, {args: tls});
    await expectNeverJoins(c, noCert, /TLS failed/);
    const withCert = spawnPythonAgent(c.grpcAddress, 'with-cert', TEST_TOKEN,
      {args: [...tls, '--tls-cert', certs.clientCert, '--tls-key', certs.clientKey]});
    await waitFor('the agent with a certificate to join', () => c.api.workers().some((w) => w.agentId === withCert.agentId && w.connected), 60_000);
    // The client certificate admits to TLS only; the agent token is still checked.
    const badToken = spawnPythonAgent(c.grpcAddress, 'cert-bad-token', 'a-wrong-token-0123456789',
      {args: [...tls, '--tls-cert', certs.clientCert, '--tls-key', certs.clientKey]});
    expect((await badToken.exited).code).toBe(3);
  }, 120_000);
});

describe('plaintext beyond loopback', () => {
  test('byolctl serve refuses 0.0.0.0 without TLS (exit 2, says how to turn TLS on), and starts with --grpc-insecure', async () => {
    const home = tempDir('byol-serve-plain-');
    const saved = process.env.BYOL_AGENT_TOKEN;
    process.env.BYOL_AGENT_TOKEN = TEST_TOKEN;
    try {
      let err = '';
      const io = {out: () => undefined, err: (t: string) => void (err += t), isTTY: false};
      const base = ['serve', '--home', home.path, '--port', '0', '--grpc-port', '0', '--telemetry-port', '0', '--launcher', 'external'];
      expect(await runCli([...base, '--grpc-host', '0.0.0.0'], {io})).toBe(2);
      expect(err).toMatch(/refusing to serve gRPC for agents on 0\.0\.0\.0:0 without TLS/);
      expect(err).toMatch(/--grpc-tls-cert FILE --grpc-tls-key FILE/);
      expect(err).toMatch(/--grpc-insecure/);
      // Beyond loopback is the default for an external launcher, so it is refused without any --grpc-host too.
      err = '';
      expect(await runCli(base, {io})).toBe(2);
      expect(err).toMatch(/without TLS/);
      // The explicit opt-out starts it; with TLS it starts as well.
      for (const extra of [['--grpc-insecure'], ['--grpc-tls-cert', certs.serverCert, '--grpc-tls-key', certs.serverKey]]) {
        err = '';
        const ctrl = new AbortController();
        const running = runCli([...base, '--grpc-host', '0.0.0.0', ...extra], {io, signal: ctrl.signal});
        await waitFor('the banner', () => /byol coordinator: REST/.test(err), 30_000);
        ctrl.abort();
        expect(await running).toBe(0);
      }
    } finally {
      if (saved === undefined) delete process.env.BYOL_AGENT_TOKEN;
      else process.env.BYOL_AGENT_TOKEN = saved;
      process.exitCode = undefined;
      home.cleanup();
    }
  }, 60_000);

  test('bad TLS flag combinations are exit 2 and name the flags', async () => {
    const home = tempDir('byol-serve-flags-');
    try {
      const base = ['serve', '--home', home.path, '--port', '0', '--grpc-port', '0', '--telemetry-port', '0'];
      const cases: [string[], RegExp][] = [
        [['--grpc-tls-cert', certs.serverCert], /--grpc-tls-cert and --grpc-tls-key go together/],
        [['--grpc-tls-client-ca', certs.caCert], /--grpc-tls-client-ca and --grpc-tls-ca need --grpc-tls-cert/],
        [['--grpc-tls-cert', certs.serverCert, '--grpc-tls-key', certs.serverKey, '--grpc-tls-client-ca', certs.caCert],
          /--grpc-tls-client-ca \(mTLS\) with --launcher local: local agents have no client certificate/],
        [['--grpc-tls-cert', certs.serverCert, '--grpc-tls-key', `${certs.dir}/missing.key`], /--grpc-tls-key .*missing\.key: cannot read \(ENOENT\)/],
      ];
      for (const [flags, message] of cases) {
        let err = '';
        const io = {out: () => undefined, err: (t: string) => void (err += t), isTTY: false};
        expect([flags.join(' '), await runCli([...base, ...flags], {io})]).toEqual([flags.join(' '), 2]);
        expect(err).toMatch(message);
      }
    } finally {
      process.exitCode = undefined;
      home.cleanup();
    }
  });

  test('startCoordinator refuses it before opening anything', async () => {
    const dir = tempDir('byol-plain-');
    try {
      await expect(startCoordinator({storePath: `${dir.path}/store.db`, agentToken: TEST_TOKEN, launcher: 'external',
        grpcHost: '0.0.0.0', grpcPort: 0, telemetryPort: 0, logger: pino({level: 'silent'})})).rejects.toThrow(/without TLS/);
    } finally {
      dir.cleanup();
    }
  });
});
