/**
 * The `kubernetes` launcher (docs/architecture.md §2, §12): one Indexed Job + headless Service per byol job.
 * Loaded lazily by launchers/create-launcher.ts, because @kubernetes/client-node is an ES module that
 * only the `kubernetes` launcher needs.
 */
import type {Launcher} from '../../domain/launcher';
import type {Logger} from '../../log/logger';
import {KubernetesLauncher} from './launcher';
import type {KubernetesLauncherOptions} from './options';

export {KubernetesLauncher, KubernetesApiError} from './launcher';
export {resolveKubernetesOptions, DEFAULT_TEMPLATE_FILE, type KubernetesLauncherOptions} from './options';
export {parseWorkerTemplate, loadWorkerTemplate, WorkerTemplateError, type WorkerTemplate} from './worker-template';
export {buildJob, buildService, layoutFor, gracePeriodFor, type PodLayout} from './manifests';
export {k8sJobName, jobIdLabel, WORKER_SELECTOR} from './names';
export {podLoss, type PodLossReason} from './loss-reason';

/**
 * Factory used by create-launcher.ts. `logger` (when given) wins over options.logger. An `agentToken`
 * in the options is ignored: agent pods read BYOL_AGENT_TOKEN from the Secret named in the worker
 * template, so the token never appears in a Job manifest.
 */
export function createKubernetesLauncher(
  options: KubernetesLauncherOptions & {agentToken?: string} = {},
  logger?: Logger,
): Launcher {
  const {agentToken: _ignored, ...rest} = options;
  return new KubernetesLauncher({...rest, logger: logger ?? rest.logger});
}
