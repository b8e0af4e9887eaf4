/**
 * deploy/k8s: every overlay rendered with `kubectl kustomize` (no cluster needed) and checked against the
 * Kubernetes v1.33 schema kept in node_modules (kubernetes-models), plus the rules of docs/architecture.md §2/§11
 * and style.md "Kubernetes": selectors, named ports, probes on real REST routes, labels, no latest.
 */
import {describe, expect, test, beforeAll, afterAll} from '@jest/globals';
import {execFileSync} from 'node:child_process';
import {readFileSync, readdirSync} from 'node:fs';
import {join} from 'node:path';
import {parseAllDocuments, parse as parseYaml} from 'yaml';
import {startApiServer, type ApiServer} from '../orchestrator/src/api';
import type {CoordinatorApi} from '../orchestrator/src/domain/coordinator-api';
import {createLogger} from '../orchestrator/src/log/logger';
import {buildJob, layoutFor} from '../orchestrator/src/launchers/kubernetes/manifests';
import {parseWorkerTemplate} from '../orchestrator/src/launchers/kubernetes/worker-template';
import {schemaIssues} from '../orchestrator/src/spec/validate';
import {schemaErrors, unknownFields} from './fixtures/k8s/k8s-schema';

const ROOT = join(__dirname, '..');
const K8S = join(ROOT, 'deploy/k8s');
// The coordinator's default ports, from the real `byolctl serve` options (docs/architecture.md §2: 50051, 8080, 5555).
const DEFAULT_PORTS: Record<string, number> = JSON.parse(execFileSync(process.execPath,
  ['--import', 'tsx', join(ROOT, 'test/fixtures/k8s/serve-defaults.ts')],
  {encoding: 'utf8', env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^BYOL_.*PORT$/.test(k)))}));
const OVERLAYS: Record<string, {namespace: string | undefined; device: 'cpu' | 'cuda'}> = {
  base: {namespace: undefined, device: 'cpu'},
  'overlays/dev': {namespace: 'byol-dev', device: 'cpu'},
  'overlays/gpu': {namespace: 'byol', device: 'cuda'},
};
// Every BYOL_* environment name the TypeScript sources mention (the CLI reads one per serve flag).
const SOURCE_ENV_NAMES = new Set(
  execFileSync('grep', ['-rhoE', 'BYOL_[A-Z0-9_]+', join(ROOT, 'orchestrator/src'), '--include=*.ts'], {encoding: 'utf8'}).split('\n').filter(Boolean),
);
const RECOMMENDED = ['name', 'instance', 'component', 'part-of', 'version'].map((k) => `app.kubernetes.io/${k}`);

function render(dir: string): any[] {
  let text: string;
  try {
    text = execFileSync('kubectl', ['kustomize', join(K8S, dir)], {encoding: 'utf8'});
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('kubectl not found: install kubectl (it bundles kustomize) to render deploy/k8s');
    throw err;
  }
  return parseAllDocuments(text).map((d) => d.toJS());
}
const find = (objs: any[], kind: string, name: string) => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name.startsWith(name));
  if (!o) throw new Error(`no ${kind} ${name}*`);
  return o;
};
const subset = (small: Record<string, string>, big: Record<string, string>) =>
  Object.entries(small).every(([k, v]) => big?.[k] === v);

let rest: ApiServer;
beforeAll(async () => {
  // The real REST server; the probes need only ready(), the rest of the API is never called.
  const api = {ready: () => true, listJobs: () => []} as unknown as CoordinatorApi;
  rest = await startApiServer({api, logger: createLogger({level: 'silent'}), port: 0});
});
afterAll(async () => rest?.close());

test('the coordinator defaults were read from byolctl serve', () => {
  expect(Object.keys(DEFAULT_PORTS).sort()).toEqual(['grpc', 'http', 'telemetry']);
  for (const port of Object.values(DEFAULT_PORTS)) expect(Number.isInteger(port) && port > 0).toBe(true);
});

describe.each(Object.entries(OVERLAYS))('kustomize %s', (dir, want) => {
  const objs = render(dir);

  test('every object validates against the Kubernetes schema', () => {
    expect(objs.length).toBeGreaterThanOrEqual(10);
    expect(objs.flatMap(schemaErrors)).toEqual([]);
    expect(unknownFields(objs)).toEqual([]);
    const kinds = new Set(objs.map((o) => o.kind));
    for (const k of ['Deployment', 'Service', 'PersistentVolumeClaim', 'ServiceAccount', 'Role', 'RoleBinding', 'Secret', 'ConfigMap']) {
      expect(kinds).toContain(k);
    }
  });

  test('namespace, recommended labels, no latest tags', () => {
    for (const o of objs) {
      if (o.kind !== 'Namespace') expect([o.kind, o.metadata.namespace]).toEqual([o.kind, want.namespace]);
      for (const l of RECOMMENDED) expect([o.kind, o.metadata.name, l, typeof o.metadata.labels?.[l]]).toEqual([o.kind, o.metadata.name, l, 'string']);
    }
    const images = objs.flatMap((o) => o.spec?.template?.spec?.containers ?? []).map((c: any) => c.image);
    expect(images.length).toBeGreaterThan(0);
    for (const image of images) expect(image).toMatch(/^[^:]+(:\d+)?\/[^:]+:\d[\w.-]*$/);
    expect(JSON.stringify(objs)).not.toMatch(/:latest\b/);
  });

  test('coordinator: one replica, Recreate, selector matches its pods, probes on the http port', () => {
    const dep = find(objs, 'Deployment', 'byol-coordinator');
    expect(dep.spec.replicas).toBe(1);
    expect(dep.spec.strategy.type).toBe('Recreate');
    expect(subset(dep.spec.selector.matchLabels, dep.spec.template.metadata.labels)).toBe(true);
    const c = dep.spec.template.spec.containers[0];
    expect(Object.fromEntries(c.ports.map((p: any) => [p.name, p.containerPort]))).toEqual(DEFAULT_PORTS);
    expect(c.readinessProbe.httpGet).toEqual({path: '/readyz', port: 'http'});
    expect(c.livenessProbe.httpGet).toEqual({path: '/healthz', port: 'http'});
    expect(dep.spec.template.spec.securityContext.runAsNonRoot).toBe(true);
    // Every ConfigMap, Secret and PVC the pod names is rendered here (generated names included).
    const names = (kind: string) => objs.filter((o) => o.kind === kind).map((o) => o.metadata.name);
    for (const v of dep.spec.template.spec.volumes) {
      if (v.configMap) expect(names('ConfigMap')).toContain(v.configMap.name);
      if (v.persistentVolumeClaim) expect(names('PersistentVolumeClaim')).toContain(v.persistentVolumeClaim.claimName);
    }
    for (const e of c.env) if (e.valueFrom?.secretKeyRef) expect(names('Secret')).toContain(e.valueFrom.secretKeyRef.name);
    for (const e of c.envFrom) expect(names('ConfigMap')).toContain(e.configMapRef.name);
  });

  test('coordinator settings: every BYOL_* name is one the code reads; ports and hosts agree with the pod', () => {
    const cfg = find(objs, 'ConfigMap', 'byol-coordinator-config').data as Record<string, string>;
    for (const key of Object.keys(cfg)) expect([key, SOURCE_ENV_NAMES.has(key)]).toEqual([key, true]);
    const ports = Object.fromEntries(find(objs, 'Deployment', 'byol-coordinator').spec.template.spec.containers[0].ports
      .map((p: any) => [p.name, String(p.containerPort)]));
    expect({grpc: cfg.BYOL_GRPC_PORT, http: cfg.BYOL_PORT, telemetry: cfg.BYOL_TELEMETRY_PORT}).toEqual(ports);
    expect([cfg.BYOL_HOST, cfg.BYOL_GRPC_HOST]).toEqual(['0.0.0.0', '0.0.0.0']); // reachable from other pods
    expect(cfg.BYOL_ADVERTISE_HOST).toBe(find(objs, 'Service', 'byol-coordinator').metadata.name);
    expect(cfg.BYOL_LAUNCHER).toBe('kubernetes');
    expect(cfg.BYOL_K8S_WORKER_TEMPLATE).toBe('/etc/byol/worker-template.yaml');
  });

  test('Service: named ports at the coordinator defaults, selecting the coordinator pods', () => {
    const svc = find(objs, 'Service', 'byol-coordinator');
    const dep = find(objs, 'Deployment', 'byol-coordinator');
    expect(subset(svc.spec.selector, dep.spec.template.metadata.labels)).toBe(true);
    expect(Object.fromEntries(svc.spec.ports.map((p: any) => [p.name, p.port]))).toEqual(DEFAULT_PORTS);
    const containerPorts = dep.spec.template.spec.containers[0].ports.map((p: any) => p.name);
    for (const p of svc.spec.ports) expect(containerPorts).toContain(p.targetPort);
  });

  test('probe paths are real routes of the REST server', async () => {
    const c = find(objs, 'Deployment', 'byol-coordinator').spec.template.spec.containers[0];
    for (const path of [c.readinessProbe.httpGet.path, c.livenessProbe.httpGet.path]) {
      expect([path, (await fetch(rest.url + path)).status]).toEqual([path, 200]);
    }
    expect((await fetch(rest.url + '/healthzz')).status).toBe(404); // the check can fail
  });

  test('RBAC covers what the launcher calls, bound to the coordinator ServiceAccount', () => {
    const role = find(objs, 'Role', 'byol-launcher');
    const verbs = (group: string, resource: string) =>
      role.rules.filter((r: any) => r.apiGroups.includes(group) && r.resources.includes(resource)).flatMap((r: any) => r.verbs);
    for (const v of ['create', 'get', 'update', 'delete']) expect(verbs('batch', 'jobs')).toContain(v);
    for (const v of ['create', 'delete']) expect(verbs('', 'services')).toContain(v);
    for (const v of ['list', 'watch', 'delete']) expect(verbs('', 'pods')).toContain(v);
    expect(verbs('', 'secrets')).toEqual([]);
    const rb = find(objs, 'RoleBinding', 'byol-launcher');
    expect(rb.subjects[0]).toMatchObject({kind: 'ServiceAccount', name: 'byol-coordinator'});
    expect(find(objs, 'Deployment', 'byol-coordinator').spec.template.spec.serviceAccountName).toBe('byol-coordinator');
  });

  test('checkpoints on a ReadWriteMany claim; example tokens marked', () => {
    expect(find(objs, 'PersistentVolumeClaim', 'byol-checkpoints').spec.accessModes).toEqual(['ReadWriteMany']);
    const secret = find(objs, 'Secret', 'byol-tokens');
    for (const v of Object.values(secret.stringData)) expect(v).toMatch(/EXAMPLE.*CHANGE-ME/);
  });

  test('gRPC TLS: the coordinator serves the certificate of byol-grpc-tls, agents verify it with its CA only', () => {
    const cfg = find(objs, 'ConfigMap', 'byol-coordinator-config').data as Record<string, string>;
    expect(cfg.BYOL_GRPC_INSECURE).toBeUndefined();
    const pod = find(objs, 'Deployment', 'byol-coordinator').spec.template.spec;
    const mountOf = (spec: any, c: any, volume: (v: any) => boolean) => {
      const v = spec.volumes.find(volume);
      return v && c.volumeMounts.find((m: any) => m.name === v.name);
    };
    const tlsVolume = (v: any) => v.secret?.secretName === 'byol-grpc-tls';
    const coordMount = mountOf(pod, pod.containers[0], tlsVolume);
    expect(coordMount).toBeDefined();
    expect([cfg.BYOL_GRPC_TLS_CERT, cfg.BYOL_GRPC_TLS_KEY]).toEqual([`${coordMount.mountPath}/tls.crt`, `${coordMount.mountPath}/tls.key`]);
    const cm = find(objs, 'ConfigMap', 'byol-worker-template');
    const template = parseWorkerTemplate(parseYaml(cm.data['worker-template.yaml']));
    const spec = {apiVersion: 'byol/v1' as const, kind: 'PretrainJob' as const, metadata: {name: 'x'}, spec: {}};
    const workerPod = buildJob({jobId: 'tls', workers: 1, spec, coordinatorAddress: 'byol-coordinator:50051'}, template).spec.template.spec;
    const agent = workerPod.containers[0];
    const caVolume = workerPod.volumes.find(tlsVolume);
    expect(caVolume.secret.items).toEqual([{key: 'ca.crt', path: 'ca.crt'}]); // never the server key
    const caMount = mountOf(workerPod, agent, tlsVolume);
    expect(agent.env).toContainEqual({name: 'BYOL_TLS_CA', value: `${caMount.mountPath}/ca.crt`});
  });

  test('the worker template parses, and the Job built from it validates', () => {
    const cm = find(objs, 'ConfigMap', 'byol-worker-template');
    const template = parseWorkerTemplate(parseYaml(cm.data['worker-template.yaml']), `${dir} worker-template.yaml`);
    expect(template.device).toBe(want.device);
    const spec = {apiVersion: 'byol/v1' as const, kind: 'PretrainJob' as const, metadata: {name: 'x'}, spec: {}};
    const job = buildJob({jobId: 'cifar10-r18-7f3a2c', workers: 4, spec, coordinatorAddress: 'byol-coordinator:50051'}, template);
    expect(schemaErrors(job)).toEqual([]);
    expect(unknownFields([job])).toEqual([]);
    // The pod mounts only claims the overlay creates.
    const claims = job.spec.template.spec.volumes.filter((v: any) => v.persistentVolumeClaim).map((v: any) => v.persistentVolumeClaim.claimName);
    const pvcs = objs.filter((o) => o.kind === 'PersistentVolumeClaim').map((o) => o.metadata.name);
    for (const c of claims) expect(pvcs).toContain(c);
    expect(job.spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.name).toBe(find(objs, 'Secret', 'byol-tokens').metadata.name);
  });
});

test('gpu overlay: GPUs, preemptible pool, grace period = 30 s default + margin', () => {
  const cm = find(render('overlays/gpu'), 'ConfigMap', 'byol-worker-template');
  const template = parseWorkerTemplate(parseYaml(cm.data['worker-template.yaml']));
  const spec = {apiVersion: 'byol/v1' as const, kind: 'PretrainJob' as const, metadata: {name: 'x'}, spec: {}};
  const job = buildJob({jobId: 'imagenet', workers: 16, spec, coordinatorAddress: 'c:50051'}, template);
  const pod = job.spec.template.spec;
  expect(job.spec.parallelism).toBe(2);
  expect(pod.containers[0].resources.limits['nvidia.com/gpu']).toBe('8');
  expect(pod.terminationGracePeriodSeconds).toBe(45);
  expect(Object.keys(pod.nodeSelector).length).toBeGreaterThan(0);
  expect(pod.tolerations.map((t: any) => t.key)).toContain('nvidia.com/gpu');
});

test('no commonLabels in any kustomization; Dockerfiles pin their bases', () => {
  const files = ['base', 'overlays/dev', 'overlays/gpu'].map((d) => join(K8S, d, 'kustomization.yaml'));
  for (const f of files) expect([f, Object.keys(parseYaml(readFileSync(f, 'utf8'))).includes('commonLabels')]).toEqual([f, false]);
  const docker = join(ROOT, 'deploy/docker');
  const dockerfiles = readdirSync(docker).filter((f) => f.endsWith('.Dockerfile'));
  expect(dockerfiles.sort()).toEqual(['coordinator.Dockerfile', 'worker.Dockerfile']);
  for (const f of dockerfiles) {
    const text = readFileSync(join(docker, f), 'utf8');
    const stages = [...text.matchAll(/^FROM\s+\S+\s+AS\s+(\S+)/gm)].map((m) => m[1]);
    const bases = [...text.matchAll(/^(?:FROM|ARG BASE_IMAGE=)\s*(\S+)/gm)].map((m) => m[1])
      .filter((b) => !b.startsWith('$') && !stages.includes(b));
    expect(bases.length).toBeGreaterThan(0);
    for (const b of bases) expect(b).toMatch(/^[\w./-]+:\d[\w.-]*$/);
    expect(text).toMatch(/^USER 10001/m);
    expect(text).toMatch(/^HEALTHCHECK /m);
  }
});

test('the checks reject a broken Job and unknown fields (they are not vacuous)', () => {
  const bad = {apiVersion: 'batch/v1', kind: 'Job', metadata: {name: 'x'},
    spec: {completionMode: 'Sometimes', parallelism: '2', template: {spec: {containers: [{image: 'i:1'}]}}}};
  const errors = schemaErrors(bad).join('\n');
  expect(errors).toMatch(/\/spec\/completionMode/);
  expect(errors).toMatch(/\/spec\/parallelism/);
  expect(errors).toMatch(/containers\/0.*name/);
  expect(schemaErrors({apiVersion: 'v1', kind: 'Nonsense', metadata: {name: 'x'}})[0]).toMatch(/not known/);
  const typo = {apiVersion: 'batch/v1', kind: 'Job', metadata: {name: 't'},
    spec: {template: {spec: {nodeselector: {}, containers: [{name: 'a', image: 'i:1', env: [{name: 'A', valu: '1'}]}]}}}};
  expect(unknownFields([typo])).toEqual(['Job/t: .spec.template.spec.nodeselector', 'Job/t: .spec.template.spec.containers[0].env[0].valu']);
});

test('examples/k8s job specs are valid and map onto the gpu overlay as documented', () => {
  const cm = find(render('overlays/gpu'), 'ConfigMap', 'byol-worker-template');
  const template = parseWorkerTemplate(parseYaml(cm.data['worker-template.yaml']));
  const layouts: Record<string, unknown> = {};
  for (const f of ['cifar10-4gpu.yaml', 'imagenet-2x8.yaml']) {
    const doc = parseYaml(readFileSync(join(ROOT, 'examples/k8s', f), 'utf8'));
    expect([f, schemaIssues(doc)]).toEqual([f, []]);
    expect(doc.spec.resources.device).toBe('cuda');
    layouts[f] = layoutFor(doc.spec.resources.workers, template);
  }
  expect(layouts).toEqual({'cifar10-4gpu.yaml': {pods: 1, devicesPerPod: 4}, 'imagenet-2x8.yaml': {pods: 2, devicesPerPod: 8}});
});
