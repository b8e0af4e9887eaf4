import type {CoreV1Api, Watch} from '@kubernetes/client-node';
import type {Logger} from '../../log/logger';
import {podLoss, type PodLossReason} from './loss-reason';
import {WORKER_SELECTOR} from './names';

export interface PodWatcherOptions {
  core: CoreV1Api;
  watch: Watch;
  namespace: string;
  logger: Logger;
  /** Delay before listing and watching again after the watch ended; doubles while lists fail (at most 30 s). */
  retryMs: number;
  /** Called once per lost pod. */
  onLost: (pod: any, reason: PodLossReason) => void;
}

/**
 * Lists, then watches, the launcher's worker pods in one namespace (label selector WORKER_SELECTOR).
 * Every time the watch ends (server timeout, 410 Gone, network) it lists again: pods that vanished
 * while nobody watched are reported as deleted, so no loss is missed across reconnects.
 */
export class PodWatcher {
  private readonly known = new Map<string, any>(); // uid -> last seen pod
  private readonly reported = new Set<string>();
  private controller: AbortController | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private running: Promise<void> | null = null;
  private failures = 0;

  constructor(private readonly opts: PodWatcherOptions) {}

  /** Start once; later calls return the first start's promise (resolves when the first list is done). */
  start(): Promise<void> {
    this.running ??= this.cycle();
    return this.running;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.controller?.abort();
    this.controller = null;
  }

  private async cycle(): Promise<void> {
    if (this.stopped) return;
    const {core, watch, namespace, logger} = this.opts;
    try {
      const list = await core.listNamespacedPod({namespace, labelSelector: WORKER_SELECTOR});
      this.failures = 0;
      const seen = new Set<string>();
      for (const pod of list.items ?? []) {
        const uid = pod.metadata?.uid;
        if (!uid) continue;
        seen.add(uid);
        this.apply('MODIFIED', pod);
      }
      for (const [uid, pod] of this.known) {
        if (!seen.has(uid)) this.apply('DELETED', pod);
      }
      if (this.stopped) return;
      const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`;
      const query = {labelSelector: WORKER_SELECTOR, resourceVersion: list.metadata?.resourceVersion, allowWatchBookmarks: true};
      this.controller = await watch.watch(path, query, (type, obj) => this.onEvent(type, obj), (err) => this.ended(err));
    } catch (err) {
      this.failures += 1;
      this.ended(err);
    }
  }

  private onEvent(type: string, obj: any): void {
    if (type === 'ERROR') {
      // e.g. 410 Gone: the resourceVersion is too old; stop this watch and list again.
      this.opts.logger.info({status: obj?.code, message: obj?.message}, 'pod watch error event; listing pods again');
      this.controller?.abort();
      return;
    }
    if (type === 'BOOKMARK') return;
    this.apply(type, obj);
  }

  private apply(type: string, pod: any): void {
    const uid: string | undefined = pod?.metadata?.uid;
    if (!uid) return;
    const already = this.reported.has(uid);
    if (type === 'DELETED') {
      // A deleted pod never comes back: forget it, so these sets stay as small as the live pods.
      this.known.delete(uid);
      this.reported.delete(uid);
    } else {
      this.known.set(uid, pod);
    }
    const reason = podLoss(type, pod);
    if (!reason || already) return;
    if (type !== 'DELETED') this.reported.add(uid);
    this.opts.onLost(pod, reason);
  }

  private ended(err: unknown): void {
    this.controller = null;
    if (this.stopped) return;
    if (err && (err as any)?.name !== 'AbortError') {
      this.opts.logger.warn({err: String((err as Error)?.message ?? err)},
        'pod watch failed; retrying. Check the coordinator\'s RBAC (pods: list, watch) and API server reachability');
    }
    const delay = Math.min(this.opts.retryMs * 2 ** Math.min(this.failures, 10), 30000);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.cycle();
    }, delay);
  }
}
