/**
 * The `kubernetes` launcher (real @kubernetes/client-node 1.4.0, in its own Node process: see
 * fixtures/k8s/launcher-driver.ts) against a Kubernetes API server on loopback
 * (fixtures/k8s/fake-api-server.ts): the Job and Service it creates, losses it reports, and that
 * release leaves nothing behind.
 */
import {afterAll, beforeAll, expect, test} from '@jest/globals';
import {spawn, type ChildProcessWithoutNullStreams} from 'node:child_process';
import {mkdtempSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {createInterface} from 'node:readline';
import {FakeKubeApi} from './fixtures/k8s/fake-api-server';
import {schemaErrors, unknownFields} from './fixtures/k8s/k8s-schema';

const NS = 'byol-test';
const ROOT = join(__dirname, '..');
const TEMPLATE = `
image: registry.example.com:5000/byol-worker:0.1.0
device: cpu
devicesPerPod: 1
terminationMarginSeconds: 10
tokenSecret: {name: byol-tokens, key: agent-token}
volumes: [{name: checkpoints, persistentVolumeClaim: {claimName: byol-checkpoints}}]
volumeMounts: [{name: checkpoints, mountPath: /var/lib/byol/checkpoints}]
`;

let api: FakeKubeApi;
let driver: ChildProcessWithoutNullStreams;
const inbox: any[] = [];
const waiters: (() => void)[] = [];

/** Wait until a message from the driver matches (messages are consumed in order of arrival). */
async function next(match: (m: any) => boolean, what: string, timeoutMs = 10000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const i = inbox.findIndex(match);
    if (i >= 0) return inbox.splice(i, 1)[0];
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(inbox)}`);
    await new Promise<void>((r) => {
      waiters.push(r);
      setTimeout(r, 100);
    });
  }
}

async function call(cmd: Record<string, unknown>): Promise<void> {
  driver.stdin.write(JSON.stringify(cmd) + '\n');
  const reply = await next((m) => m.done === cmd.op || m.op === cmd.op, `reply to ${cmd.op}`);
  if (reply.error) throw new Error(reply.error);
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const launchReq = (jobId: string, workers: number, grace = 30) => ({
  jobId, workers, coordinatorAddress: 'byol-coordinator:50051',
  spec: {apiVersion: 'byol/v1', kind: 'PretrainJob', metadata: {name: 'r18'}, spec: {preemption: {gracePeriodSeconds: grace}}},
});

beforeAll(async () => {
  api = new FakeKubeApi(NS);
  const url = await api.listen();
  const dir = mkdtempSync(join(tmpdir(), 'byol-k8s-'));
  writeFileSync(join(dir, 'worker-template.yaml'), TEMPLATE);
  driver = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/fixtures/k8s/launcher-driver.ts'), url, NS, join(dir, 'worker-template.yaml')],
    {cwd: ROOT, env: {...process.env, BYOL_LOG_LEVEL: 'silent'}});
  let stderr = '';
  driver.stderr.on('data', (d) => (stderr += d));
  driver.on('exit', (code) => {
    if (code) inbox.push({crashed: code, stderr});
  });
  createInterface({input: driver.stdout}).on('line', (line) => {
    inbox.push(JSON.parse(line));
    waiters.splice(0).forEach((w) => w());
  });
  await next((m) => m.ready, 'driver start');
});

afterAll(async () => {
  if (driver.exitCode === null) driver.kill();
  await api.close();
});

test('ensureAgents creates a schema-valid Indexed Job and a headless Service, and is idempotent', async () => {
  await call({op: 'ensure', req: launchReq('cifar10-r18-7f3a2c', 3, 20)});
  const posts = api.requests.filter((r) => r.method === 'POST');
  expect(posts.map((r) => r.path)).toEqual([`/api/v1/namespaces/${NS}/services`, `/apis/batch/v1/namespaces/${NS}/jobs`]);
  const [svc, job] = posts.map((r) => r.body);
  expect(schemaErrors(job)).toEqual([]);
  expect(schemaErrors(svc)).toEqual([]);
  expect(unknownFields([job, svc])).toEqual([]);
  expect(job.metadata.name).toBe('byol-cifar10-r18-7f3a2c');
  expect(job.spec).toMatchObject({completionMode: 'Indexed', completions: 3, parallelism: 3});
  expect(job.spec.backoffLimit).toBeGreaterThanOrEqual(100);
  const pod = job.spec.template.spec;
  expect(pod).toMatchObject({restartPolicy: 'Never', subdomain: job.metadata.name, terminationGracePeriodSeconds: 30});
  expect(pod.securityContext).toMatchObject({runAsNonRoot: true, fsGroup: 10001}); // same uid as the coordinator on the shared volume
  const c = pod.containers[0];
  expect(c.args).toEqual(['agent', '--coordinator', 'byol-coordinator:50051', '--devices', 'cpu:1', '--agent-id', '$(POD_NAME)', '--host', '$(POD_IP)']);
  const env = Object.fromEntries(c.env.map((e: any) => [e.name, e.valueFrom ?? e.value]));
  expect(env.BYOL_AGENT_TOKEN).toEqual({secretKeyRef: {name: 'byol-tokens', key: 'agent-token'}});
  expect(env.POD_IP).toEqual({fieldRef: {fieldPath: 'status.podIP'}});
  expect(JSON.stringify(job)).not.toMatch(/EXAMPLE|CHANGE-ME/);
  // Headless Service named like the Job, selecting exactly its pods.
  expect(svc.metadata.name).toBe(job.metadata.name);
  expect(svc.spec.clusterIP).toBe('None');
  expect(Object.entries(svc.spec.selector).every(([k, v]) => job.spec.template.metadata.labels[k] === v)).toBe(true);
  expect(api.podsOf(job.metadata.name)).toHaveLength(3);

  // Again with the same workers: 409s, one read, no change.
  const before = api.requests.length;
  await call({op: 'ensure', req: launchReq('cifar10-r18-7f3a2c', 3, 20)});
  expect(api.requests.slice(before).map((r) => r.method)).toEqual(['POST', 'POST', 'GET']);
  // Fewer workers: the Indexed Job is resized in place.
  await call({op: 'ensure', req: launchReq('cifar10-r18-7f3a2c', 2, 20)});
  const put = api.requests.filter((r) => r.method === 'PUT');
  expect(put).toHaveLength(1);
  expect(put[0].body.spec).toMatchObject({parallelism: 2, completions: 2});
});

test('a deleted, evicted or failed pod is reported once through onLoss', async () => {
  const name = 'byol-cifar10-r18-7f3a2c';
  await until(() => api.openWatches === 1, 'the pod watch');
  const [p0, p1, p2] = api.podsOf(name);
  api.deletePod(p0.metadata.name);
  expect((await next((m) => m.loss, 'loss of deleted pod')).loss)
    .toEqual({jobId: 'cifar10-r18-7f3a2c', agentId: p0.metadata.name, reason: 'deleted'});

  // Eviction: DisruptionTarget condition, phase Failed, then the pod object goes away; one report.
  api.updatePod(p1.metadata.name, (p) => {
    p.status = {phase: 'Failed', reason: 'Evicted', conditions: [{type: 'DisruptionTarget', status: 'True', reason: 'EvictionByEvictionAPI'}]};
  });
  expect((await next((m) => m.loss, 'loss of evicted pod')).loss).toMatchObject({agentId: p1.metadata.name, reason: 'evicted'});
  api.deletePod(p1.metadata.name);

  api.updatePod(p2.metadata.name, (p) => (p.status = {phase: 'Failed', containerStatuses: []}));
  expect((await next((m) => m.loss, 'loss of failed pod')).loss).toMatchObject({agentId: p2.metadata.name, reason: 'failed'});
  // A pod that is only marked for deletion (its agent is checkpointing) is not lost yet.
  const p3 = api.createPodFor(name, 0);
  api.updatePod(p3.metadata.name, (p) => (p.metadata.deletionTimestamp = new Date().toISOString()));
  await new Promise((r) => setTimeout(r, 300));
  expect(inbox.filter((m) => m.loss)).toEqual([]);
});

test('a pod lost while the watch was down is found by the next list', async () => {
  const name = 'byol-cifar10-r18-7f3a2c';
  // The pod marked for deletion in the test above: running, seen by the launcher, not yet reported.
  const victim = api.podsOf(name).find((p) => p.status.phase === 'Running')!;
  expect(victim.metadata.deletionTimestamp).toBeDefined();
  const lists = api.requests.filter((r) => r.method === 'GET' && r.path.endsWith('/pods') && !r.query.watch).length;
  api.dropWatches();
  api.pods.delete(victim.metadata.name); // gone without any event reaching the launcher
  expect((await next((m) => m.loss, 'loss found by relisting')).loss).toMatchObject({agentId: victim.metadata.name, reason: 'deleted'});
  expect(api.requests.filter((r) => r.method === 'GET' && r.path.endsWith('/pods') && !r.query.watch).length).toBeGreaterThan(lists);
  await until(() => api.openWatches === 1, 'the pod watch again');
});

test('release deletes the Job and Service, reports no loss for its pods, and is idempotent', async () => {
  await call({op: 'ensure', req: launchReq('other-job', 1)});
  await until(() => api.podsOf('byol-other-job').length === 1, 'other job pod');
  await call({op: 'release', jobId: 'cifar10-r18-7f3a2c'});
  const deletes = api.requests.filter((r) => r.method === 'DELETE');
  expect(deletes.map((r) => r.path)).toEqual([
    `/apis/batch/v1/namespaces/${NS}/jobs/byol-cifar10-r18-7f3a2c`,
    `/api/v1/namespaces/${NS}/services/byol-cifar10-r18-7f3a2c`,
  ]);
  expect(deletes[0].query.propagationPolicy).toBe('Background'); // pods go with the Job
  expect(api.podsOf('byol-cifar10-r18-7f3a2c')).toEqual([]); // the fake garbage collector sent DELETED events
  await call({op: 'release', jobId: 'cifar10-r18-7f3a2c'}); // 404s are fine
  await call({op: 'release', jobId: 'other-job'});
  await new Promise((r) => setTimeout(r, 300));
  expect(inbox.filter((m) => m.loss)).toEqual([]);
  expect([...api.jobs.keys(), ...api.services.keys()]).toEqual([]);
});

test('API errors name the object, the status and what to check; close() stops the watch', async () => {
  api.forbidden.add('byol-denied');
  await expect(call({op: 'ensure', req: launchReq('denied', 1)}))
    .rejects.toThrow(/creating Service byol-test\/byol-denied failed \(HTTP 403\).*RBAC/);
  expect([...api.jobs.keys(), ...api.services.keys()]).toEqual([]); // nothing created
  expect(api.openWatches).toBe(1);
  await call({op: 'close'});
  await until(() => api.openWatches === 0, 'the watch to stop');
  await expect(call({op: 'ensure', req: launchReq('late', 1)})).rejects.toThrow(/after close/);
  driver.stdin.write(JSON.stringify({op: 'exit'}) + '\n');
  await until(() => driver.exitCode !== null, 'driver exit');
  expect(driver.exitCode).toBe(0);
});
