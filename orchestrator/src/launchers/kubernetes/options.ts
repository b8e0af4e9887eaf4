import {existsSync, readFileSync} from 'node:fs';
import {KubeConfig} from '@kubernetes/client-node';
import {createLogger, type Logger} from '../../log/logger';
import {loadWorkerTemplate, parseWorkerTemplate, type WorkerTemplate} from './worker-template';

/** Options of the `kubernetes` launcher, as given. */
export interface KubernetesLauncherOptions {
  /** Namespace of the Jobs and Services. Default: the coordinator pod's own namespace, else the kubeconfig context's, else "default". */
  namespace?: string;
  /** The worker pod template itself (validated like the file). Takes precedence over templateFile. */
  template?: unknown;
  /** Worker pod template file. Default: env BYOL_K8S_WORKER_TEMPLATE, else /etc/byol/worker-template.yaml (the ConfigMap mount). */
  templateFile?: string;
  /** host:port agents dial (e.g. byol-coordinator.byol.svc:50051). Default: env BYOL_COORDINATOR_ADDRESS, else the LaunchRequest's. */
  coordinatorAddress?: string;
  /** A KubeConfig, or a kubeconfig file path. Default: in-cluster service account when running in a pod, else KUBECONFIG / ~/.kube/config. */
  kubeconfig?: KubeConfig | string;
  /** Delay before listing and watching pods again after a watch ends. Default 1000 ms. */
  watchRetryMs?: number;
  logger?: Logger;
}

/** The options with defaults applied and the template validated. */
export interface ResolvedKubernetesOptions {
  namespace: string;
  template: WorkerTemplate;
  coordinatorAddress: string | null;
  kubeConfig: KubeConfig;
  watchRetryMs: number;
  logger: Logger;
}

export const DEFAULT_TEMPLATE_FILE = '/etc/byol/worker-template.yaml';
const SA_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

function loadKubeConfig(given: KubeConfig | string | undefined): KubeConfig {
  if (given instanceof KubeConfig) return given;
  const kc = new KubeConfig();
  if (typeof given === 'string') kc.loadFromFile(given);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster()) {
    throw new Error('kubernetes launcher: no cluster in the kubeconfig; run the coordinator in a pod, set KUBECONFIG, or pass --kubeconfig');
  }
  return kc;
}

function defaultNamespace(kc: KubeConfig): string {
  if (process.env.KUBERNETES_SERVICE_HOST && existsSync(SA_NAMESPACE_FILE)) {
    return readFileSync(SA_NAMESPACE_FILE, 'utf8').trim();
  }
  return kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
}

export function resolveKubernetesOptions(opts: KubernetesLauncherOptions = {}): ResolvedKubernetesOptions {
  const kubeConfig = loadKubeConfig(opts.kubeconfig);
  const template = opts.template !== undefined
    ? parseWorkerTemplate(opts.template, 'kubernetes launcher option "template"')
    : loadWorkerTemplate(opts.templateFile ?? process.env.BYOL_K8S_WORKER_TEMPLATE ?? DEFAULT_TEMPLATE_FILE);
  const watchRetryMs = opts.watchRetryMs ?? 1000;
  if (!(watchRetryMs >= 0)) throw new Error(`kubernetes launcher: watchRetryMs must be >= 0, got ${watchRetryMs}`);
  return {
    namespace: opts.namespace ?? defaultNamespace(kubeConfig),
    template,
    coordinatorAddress: opts.coordinatorAddress ?? process.env.BYOL_COORDINATOR_ADDRESS ?? null,
    kubeConfig,
    watchRetryMs,
    logger: opts.logger ?? createLogger({name: 'kubernetes-launcher'}),
  };
}
