/** Job events: stored (for `logs` and REST) and pushed to live subscribers (server-sent events). */
import type {Logger} from 'pino';
import type {JobStore} from '../domain/store';
import type {JobEvent} from '../domain/types';

export class EventBus {
  private readonly subs = new Map<string, Set<(ev: JobEvent) => void>>();

  constructor(private readonly store: JobStore, private readonly log: Logger) {}

  emit(jobId: string, level: JobEvent['level'], type: string, message: string, data?: Record<string, unknown>): JobEvent {
    const ev = this.store.appendEvent({jobId, tMs: Date.now(), level, type, message, ...(data ? {data} : {})});
    this.log[level === 'error' ? 'error' : level === 'warn' ? 'warn' : 'info']({jobId, type, ...data}, message);
    for (const l of this.subs.get(jobId) ?? []) {
      try {
        l(ev);
      } catch (err) {
        this.log.warn({err, jobId}, 'event subscriber threw; it stays subscribed');
      }
    }
    return ev;
  }

  subscribe(jobId: string, listener: (ev: JobEvent) => void): () => void {
    let set = this.subs.get(jobId);
    if (!set) this.subs.set(jobId, (set = new Set()));
    set.add(listener);
    return () => {
      set!.delete(listener);
      if (set!.size === 0) this.subs.delete(jobId);
    };
  }
}
