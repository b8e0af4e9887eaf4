import {readFileSync} from 'node:fs';
import {parse as parseYaml} from 'yaml';

/**
 * The worker pod template (deploy/k8s/base/worker-template.yaml, mounted from a ConfigMap): what every
 * agent pod of every job gets. Pod-level fields (resources, tolerations, volumes, ...) are passed to the
 * API server as written; it validates them.
 */
export interface WorkerTemplate {
  /** Worker image, pinned by tag or digest (never `latest`). */
  image: string;
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  /** What each agent offers: `cuda` (all GPUs of its pod) or `cpu` (`--devices cpu:<devicesPerPod>`). */
  device: 'cuda' | 'cpu';
  /** Most ranks per pod (GPUs per node for cuda, CPU slots for cpu); see manifests.layoutFor. Default 1. */
  devicesPerPod: number;
  /** Container resources; for cuda the launcher sets the `nvidia.com/gpu` limit to the pod's device count. */
  resources: Record<string, any>;
  env: Record<string, any>[];
  nodeSelector: Record<string, string>;
  tolerations: Record<string, any>[];
  volumes: Record<string, any>[];
  volumeMounts: Record<string, any>[];
  labels: Record<string, string>;
  annotations: Record<string, string>;
  serviceAccountName?: string;
  priorityClassName?: string;
  /** Pod securityContext. Default: non-root uid/gid 10001 (the worker image's user), fsGroup 10001 for the shared volumes. */
  podSecurityContext: Record<string, any>;
  /** Added to the job's preemption.gracePeriodSeconds for the pod's terminationGracePeriodSeconds. Default 15. */
  terminationMarginSeconds: number;
  /** Job backoffLimit: pod failures (other than disruptions, which are ignored) before the Job gives up. Default 1000. */
  backoffLimit: number;
  /** Secret holding the agent token (env BYOL_AGENT_TOKEN). Default byol-tokens / agent-token. */
  tokenSecret: {name: string; key: string};
  /** Value of app.kubernetes.io/version on created objects. Default: the image tag. */
  version: string;
}

/** The template file is unusable; names the file and the field. */
export class WorkerTemplateError extends Error {
  constructor(readonly source: string, readonly field: string, detail: string) {
    super(`${source}: ${field ? field + ': ' : ''}${detail}`);
    this.name = 'WorkerTemplateError';
  }
}

type Check = (v: unknown) => string | null;
const str: Check = (v) => (typeof v === 'string' && v.length > 0 ? null : 'must be a non-empty string');
const obj: Check = (v) => (v && typeof v === 'object' && !Array.isArray(v) ? null : 'must be a mapping');
const arr: Check = (v) => (Array.isArray(v) && v.every((x) => x && typeof x === 'object') ? null : 'must be a list of mappings');
const strMap: Check = (v) =>
  obj(v) ?? (Object.values(v as object).every((x) => typeof x === 'string') ? null : 'every value must be a string');
const intMin = (min: number): Check => (v) => (Number.isInteger(v) && (v as number) >= min ? null : `must be an integer >= ${min}`);
const oneOf = (...xs: string[]): Check => (v) => (xs.includes(v as string) ? null : `must be one of ${xs.join(', ')}`);

const FIELDS: Record<string, Check> = {
  image: (v) =>
    str(v) ?? (/:latest$|^[^:@]+$/.test((v as string).replace(/^[^/]*:\d+\//, ''))
      ? 'must pin a version tag or digest (not latest, not untagged)'
      : null),
  imagePullPolicy: oneOf('Always', 'IfNotPresent', 'Never'),
  device: oneOf('cuda', 'cpu'),
  devicesPerPod: intMin(1),
  resources: obj,
  env: arr,
  nodeSelector: strMap,
  tolerations: arr,
  volumes: arr,
  volumeMounts: arr,
  labels: strMap,
  annotations: strMap,
  serviceAccountName: str,
  priorityClassName: str,
  podSecurityContext: obj,
  terminationMarginSeconds: intMin(0),
  backoffLimit: intMin(0),
  tokenSecret: (v) => obj(v) ?? str((v as any).name) ?? str((v as any).key) ??
    (Object.keys(v as object).every((k) => k === 'name' || k === 'key') ? null : 'only name and key are allowed'),
  version: str,
};

/** Validate a parsed template and fill defaults. `source` names the file in errors. */
export function parseWorkerTemplate(doc: unknown, source = 'worker template'): WorkerTemplate {
  if (obj(doc)) throw new WorkerTemplateError(source, '', 'must be a YAML mapping of template fields');
  const d = doc as Record<string, unknown>;
  for (const key of Object.keys(d)) {
    if (!(key in FIELDS)) throw new WorkerTemplateError(source, key, `unknown field; allowed: ${Object.keys(FIELDS).join(', ')}`);
  }
  if (d.image === undefined) throw new WorkerTemplateError(source, 'image', 'is required (the worker image, pinned)');
  for (const [key, check] of Object.entries(FIELDS)) {
    if (d[key] === undefined) continue;
    const problem = check(d[key]);
    if (problem) throw new WorkerTemplateError(source, key, problem);
  }
  const image = d.image as string;
  const tag = image.includes('@') ? image.split('@')[1].slice(0, 20) : image.slice(image.lastIndexOf(':') + 1);
  return {
    image,
    imagePullPolicy: (d.imagePullPolicy as WorkerTemplate['imagePullPolicy']) ?? 'IfNotPresent',
    device: (d.device as WorkerTemplate['device']) ?? 'cuda',
    devicesPerPod: (d.devicesPerPod as number) ?? 1,
    resources: (d.resources as Record<string, any>) ?? {},
    env: (d.env as Record<string, any>[]) ?? [],
    nodeSelector: (d.nodeSelector as Record<string, string>) ?? {},
    tolerations: (d.tolerations as Record<string, any>[]) ?? [],
    volumes: (d.volumes as Record<string, any>[]) ?? [],
    volumeMounts: (d.volumeMounts as Record<string, any>[]) ?? [],
    labels: (d.labels as Record<string, string>) ?? {},
    annotations: (d.annotations as Record<string, string>) ?? {},
    serviceAccountName: d.serviceAccountName as string | undefined,
    priorityClassName: d.priorityClassName as string | undefined,
    podSecurityContext: (d.podSecurityContext as Record<string, any>) ??
      {runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, fsGroup: 10001},
    terminationMarginSeconds: (d.terminationMarginSeconds as number) ?? 15,
    backoffLimit: (d.backoffLimit as number) ?? 1000,
    tokenSecret: (d.tokenSecret as WorkerTemplate['tokenSecret']) ?? {name: 'byol-tokens', key: 'agent-token'},
    version: (d.version as string) ?? tag.replace(/[^A-Za-z0-9._-]/g, '-'),
  };
}

/** Read and validate the template file (YAML or JSON), e.g. the ConfigMap key mounted in the coordinator pod. */
export function loadWorkerTemplate(file: string): WorkerTemplate {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new WorkerTemplateError(file, '', `cannot read the worker template (${(err as Error).message}); check --k8s-worker-template`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new WorkerTemplateError(file, '', `not valid YAML: ${(err as Error).message}`);
  }
  return parseWorkerTemplate(doc, file);
}
