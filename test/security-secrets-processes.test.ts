/**
 * Secrets across real processes (issue 11): `byolctl serve` as its own process with TLS, the local launcher
 * and tokens from files. While a tiny job trains, every process of the tree is inspected through /proc:
 * no token on any command line (`ps` shows those), local agents hold the agent token but not the API token,
 * trainers hold neither, and the agents' work folders are private (0700) and gone once the job is done.
 * Then an external Python agent joins with --token-file.
 */
import {afterAll, beforeAll, expect, test} from '@jest/globals';
import {spawn, type ChildProcess} from 'node:child_process';
import {existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {killAllAgents, spawnPythonAgent} from './helpers/python-agent';
import {REPO_ROOT, tempDir} from './helpers/temp';
import {makeTestCerts, TEST_SERVER_NAME, type TestCerts} from './helpers/test-certs';
import {tinySpec} from './helpers/test-coordinator';
import {waitFor} from './helpers/wait';

const AGENT_TOKEN = 'agent-token-from-a-file-0123456789';
const API_TOKEN = 'api-token-from-a-file-0123456789';
let certs: TestCerts;
let home: {path: string; cleanup: () => void};
let serve: ChildProcess | undefined;
let serveOut = '';
beforeAll(() => {
  certs = makeTestCerts();
  home = tempDir('byol-secrets-');
});
afterAll(async () => {
  await killAllAgents();
  if (serve && serve.exitCode === null) {
    serve.kill('SIGTERM');
    await new Promise((r) => serve!.once('exit', r));
  }
  certs?.cleanup();
  home?.cleanup();
});

interface Proc {pid: number; argv: string[]; env: string}
/** Every live process whose command line mentions `marker`, with its argv and environment. */
function processes(marker: string): Proc[] {
  const out: Proc[] = [];
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (argv.join(' ').includes(marker)) out.push({pid: Number(p), argv, env: readFileSync(`/proc/${p}/environ`, 'utf8')});
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

test('tokens from files: none on a command line, agents get only the agent token, trainers none; work folders private and removed', async () => {
  const tmp = join(home.path, 'tmp');
  mkdirSync(tmp);
  const agentTokenFile = join(home.path, 'agent-token');
  const apiTokenFile = join(home.path, 'api-token');
  writeFileSync(agentTokenFile, AGENT_TOKEN + '\n', {mode: 0o600});
  writeFileSync(apiTokenFile, API_TOKEN + '\n', {mode: 0o600});
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BYOL_')));
  serve = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'orchestrator/src/cli/main.ts'), 'serve', '--home', join(home.path, 'h'),
    '--port', '0', '--grpc-port', '0', '--telemetry-port', '0', '--launcher', 'local',
    '--agent-token-file', agentTokenFile, '--api-token-file', apiTokenFile,
    '--grpc-tls-cert', certs.serverCert, '--grpc-tls-key', certs.serverKey, '--grpc-tls-ca', certs.caCert],
  {cwd: REPO_ROOT, env: {...env, TMPDIR: tmp, BYOL_LOG_LEVEL: 'info'}, stdio: ['ignore', 'pipe', 'pipe']});
  serve.stdout!.on('data', (b) => void (serveOut += b));
  serve.stderr!.on('data', (b) => void (serveOut += b));
  const banner = await waitFor('the serve banner', () => /REST (\S+), gRPC (\S+),/.exec(serveOut), 60_000);
  const [url, grpc] = [banner[1], banner[2]];
  const auth = {authorization: `Bearer ${API_TOKEN}`};
  const res = await fetch(`${url}/v1/jobs`, {method: 'POST', headers: {...auth, 'content-type': 'application/json'},
    body: JSON.stringify(tinySpec({workers: 1, numSamples: 64, globalBatch: 8}))});
  expect(res.status).toBe(201);
  const job = await res.json() as {id: string};

  // Watch the process tree while the job runs: agents and trainers come and go.
  const seen = new Map<number, Proc & {kind: string}>();
  const workDirs = new Map<string, number>();
  let state = '';
  const until = Date.now() + 240_000;
  while (Date.now() < until) {
    for (const p of processes('byol_worker')) {
      const kind = p.argv.includes('agent') ? 'agent' : p.argv.includes('trainer') ? 'trainer' : 'other';
      seen.set(p.pid, {...p, kind});
    }
    for (const d of existsSync(tmp) ? readdirSync(tmp) : []) {
      if (d.startsWith('byol-agent-local-')) workDirs.set(d, statSync(join(tmp, d)).mode & 0o777);
    }
    state = ((await (await fetch(`${url}/v1/jobs/${job.id}`, {headers: auth})).json()) as {state: string}).state;
    if (['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(state)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  expect([state, serveOut.slice(-3000)]).toEqual(['SUCCEEDED', expect.anything()]);
  const kinds = (k: string) => [...seen.values()].filter((p) => p.kind === k);
  expect(kinds('agent').length).toBeGreaterThanOrEqual(1);
  expect(kinds('trainer').length).toBeGreaterThanOrEqual(1);
  // Local agents verify the coordinator: TLS flags, the server name taken from the certificate.
  expect(kinds('agent')[0].argv).toEqual(expect.arrayContaining(['--tls-ca', certs.caCert, '--tls-server-name', TEST_SERVER_NAME]));
  const serveProc = processes('cli/main.ts').filter((p) => p.pid === serve!.pid);
  expect(serveProc.length).toBe(1);
  for (const p of [...seen.values(), ...serveProc]) {
    expect(p.argv.join(' ')).not.toContain(AGENT_TOKEN);
    expect(p.argv.join(' ')).not.toContain(API_TOKEN);
  }
  for (const p of seen.values()) expect(p.env).not.toContain(API_TOKEN);
  for (const a of kinds('agent')) expect(a.env).toContain(`BYOL_AGENT_TOKEN=${AGENT_TOKEN}`);
  for (const t of kinds('trainer')) expect(t.env).not.toContain(AGENT_TOKEN);
  // Work folders: seen, private, and removed when the agents left.
  expect(workDirs.size).toBeGreaterThanOrEqual(1);
  expect([...workDirs.values()]).toEqual([...workDirs.values()].map(() => 0o700));
  await waitFor('local agents gone and their folders removed', () =>
    processes('--agent-id local-').length === 0 && readdirSync(tmp).filter((d) => d.startsWith('byol-agent-')).length === 0, 60_000);

  // An external agent joins with --token-file: the token is in no argv and no environment variable.
  const ext = spawnPythonAgent(grpc.replace(/^[^:]+:/, '127.0.0.1:'), 'ext-file', null,
    {args: ['--token-file', agentTokenFile, '--tls-ca', certs.caCert, '--tls-server-name', TEST_SERVER_NAME]});
  const joined = await (async () => {
    for (const until2 = Date.now() + 60_000; Date.now() < until2;) {
      const workers = await (await fetch(`${url}/v1/workers`, {headers: auth})).json() as {agentId: string; connected: boolean}[];
      if (workers.some((w) => w.agentId === 'ext-file' && w.connected)) return true;
      await new Promise((r) => setTimeout(r, 200));
    }
    return false;
  })();
  expect([joined, ext.output().slice(-2000)]).toEqual([true, expect.anything()]);
  const extProc = processes('ext-file')[0];
  expect(extProc.argv.join(' ')).not.toContain(AGENT_TOKEN);
  expect(extProc.env).not.toContain(AGENT_TOKEN);
}, 400_000);
