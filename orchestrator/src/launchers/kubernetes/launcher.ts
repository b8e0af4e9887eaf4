import {BatchV1Api, CoreV1Api, Watch} from '@kubernetes/client-node';
import type {AgentLoss, LaunchRequest, Launcher} from '../../domain/launcher';
import type {Logger} from '../../log/logger';
import {buildJob, buildService, layoutFor} from './manifests';
import {JOB_ID_ANNOTATION, k8sJobName} from './names';
import {resolveKubernetesOptions, type KubernetesLauncherOptions, type ResolvedKubernetesOptions} from './options';
import {PodWatcher} from './pod-watcher';
import type {PodLossReason} from './loss-reason';

/** An API call failed; says which object, the HTTP status, and what to check. The cause is kept. */
export class KubernetesApiError extends Error {
  constructor(readonly action: string, readonly status: number | undefined, cause: unknown) {
    const hint = status === 403
      ? 'the coordinator\'s ServiceAccount lacks RBAC for this (see deploy/k8s/base/rbac.yaml)'
      : status === undefined ? 'check that the API server is reachable from the coordinator' : 'see the API server\'s message';
    super(`kubernetes launcher: ${action} failed${status ? ` (HTTP ${status})` : ''}: ${hint}`, {cause});
    this.name = 'KubernetesApiError';
  }
}

function statusOf(err: unknown): number | undefined {
  const code = (err as any)?.code ?? (err as any)?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

/**
 * Runs a job's agents as an Indexed Job (one agent pod per completion index) plus a headless Service
 * for stable pod hostnames, in one namespace. Watches the pods and reports a pod evicted, deleted or
 * failed through onLoss, so the coordinator starts a new generation without waiting for a heartbeat
 * timeout. The Job controller replaces lost pods itself; their agents join as new agents.
 */
export class KubernetesLauncher implements Launcher {
  readonly name = 'kubernetes' as const;
  readonly namespace: string;
  private readonly opts: ResolvedKubernetesOptions;
  private readonly batch: BatchV1Api;
  private readonly core: CoreV1Api;
  private readonly watcher: PodWatcher;
  private readonly log: Logger;
  private readonly listeners: ((loss: AgentLoss) => void)[] = [];
  private readonly released = new Set<string>();
  private closed = false;

  constructor(options: KubernetesLauncherOptions = {}) {
    this.opts = resolveKubernetesOptions(options);
    this.namespace = this.opts.namespace;
    this.log = this.opts.logger.child({module: 'kubernetes-launcher', namespace: this.namespace});
    this.batch = this.opts.kubeConfig.makeApiClient(BatchV1Api);
    this.core = this.opts.kubeConfig.makeApiClient(CoreV1Api);
    this.watcher = new PodWatcher({
      core: this.core,
      watch: new Watch(this.opts.kubeConfig),
      namespace: this.namespace,
      logger: this.log,
      retryMs: this.opts.watchRetryMs,
      onLost: (pod, reason) => this.lost(pod, reason),
    });
  }

  async ensureAgents(req: LaunchRequest): Promise<void> {
    if (this.closed) throw new Error('kubernetes launcher: ensureAgents after close()');
    this.released.delete(req.jobId);
    await this.watcher.start();
    const launch = {...req, coordinatorAddress: this.opts.coordinatorAddress ?? req.coordinatorAddress};
    const service = buildService(launch, this.opts.template);
    const job = buildJob(launch, this.opts.template);
    const name = job.metadata.name as string;
    const ns = this.namespace;
    // The Service first, so pod DNS names exist by the time agents start.
    await this.call(`creating Service ${ns}/${name}`, () => this.core.createNamespacedService({namespace: ns, body: service}), [409]);
    const created = await this.call(`creating Job ${ns}/${name}`, () => this.batch.createNamespacedJob({namespace: ns, body: job}), [409]);
    if (created) {
      this.log.info({jobId: req.jobId, k8sJob: name, namespace: ns, pods: job.spec.parallelism}, 'created worker Job and Service');
      return;
    }
    await this.resize(req, name);
  }

  /** The Job exists (ensureAgents again, or after a coordinator restart): scale it if the pod count changed. */
  private async resize(req: LaunchRequest, name: string): Promise<void> {
    const ns = this.namespace;
    const current = await this.call(`reading Job ${ns}/${name}`, () => this.batch.readNamespacedJob({name, namespace: ns}));
    const {pods} = layoutFor(req.workers, this.opts.template);
    if (!current?.spec || current.spec.parallelism === pods) return;
    // Devices per pod are fixed by the pod template (immutable); only the pod count can follow the workers.
    // Elastic Indexed Job: completions and parallelism may change together while they are equal.
    current.spec.parallelism = pods;
    current.spec.completions = pods;
    await this.call(`resizing Job ${ns}/${name} to ${pods} pods`, () => this.batch.replaceNamespacedJob({name, namespace: ns, body: current}));
    this.log.info({jobId: req.jobId, k8sJob: name, pods}, 'resized worker Job');
  }

  async release(jobId: string): Promise<void> {
    this.released.add(jobId);
    const name = k8sJobName(jobId);
    const ns = this.namespace;
    // Background propagation: the garbage collector deletes the pods; their agents get SIGTERM.
    await this.call(`deleting Job ${ns}/${name}`,
      () => this.batch.deleteNamespacedJob({name, namespace: ns, propagationPolicy: 'Background'}), [404]);
    await this.call(`deleting Service ${ns}/${name}`, () => this.core.deleteNamespacedService({name, namespace: ns}), [404]);
    this.log.info({jobId, k8sJob: name, namespace: ns}, 'released worker Job and Service');
  }

  onLoss(listener: (loss: AgentLoss) => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watcher.stop();
  }

  private lost(pod: any, reason: PodLossReason): void {
    const jobId: string | undefined = pod?.metadata?.annotations?.[JOB_ID_ANNOTATION];
    if (!jobId || this.released.has(jobId)) return; // our own release, not a loss
    const loss: AgentLoss = {jobId, agentId: pod.metadata?.name, reason};
    this.log.warn({...loss, phase: pod?.status?.phase, podReason: pod?.status?.reason},
      'worker pod lost; the coordinator recovers from the last checkpoint and the Job controller replaces the pod');
    for (const listener of this.listeners) {
      try {
        listener(loss);
      } catch (err) {
        this.log.error({err: String(err)}, 'onLoss listener threw');
      }
    }
  }

  /** Run one API call; statuses in `ok` (e.g. 409 on create, 404 on delete) give null instead of an error. */
  private async call<T>(action: string, fn: () => Promise<T>, ok: number[] = []): Promise<T | null> {
    try {
      return await fn();
    } catch (err) {
      const status = statusOf(err);
      if (status !== undefined && ok.includes(status)) return null;
      throw new KubernetesApiError(action, status, err);
    }
  }
}
