/**
 * A warning that a hostile peer can trigger a million times a second must not flood the log:
 * one line per key per interval, carrying how many were suppressed since the last one.
 */
import type {Logger} from 'pino';

export class RateLimitedWarn {
  private readonly last = new Map<string, {atMs: number; suppressed: number}>();

  constructor(private readonly log: Logger, private readonly intervalMs = 10_000, private readonly now: () => number = Date.now) {}

  /** Logs `msg` at warn level unless `key` was logged less than intervalMs ago; returns whether it logged. */
  warn(key: string, fields: Record<string, unknown>, msg: string): boolean {
    const t = this.now();
    const seen = this.last.get(key);
    if (seen && t - seen.atMs < this.intervalMs) {
      seen.suppressed++;
      return false;
    }
    if (this.last.size > 1000) this.last.clear(); // keys come from bounded sets; this is a backstop
    this.log.warn({...fields, suppressedSinceLast: seen?.suppressed ?? 0}, msg);
    this.last.set(key, {atMs: t, suppressed: 0});
    return true;
  }
}
