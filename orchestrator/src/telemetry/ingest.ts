/**
 * ZeroMQ PULL ingest of byol.v1.Metric frames (docs/internals.md "Telemetry"): decode, fence by
 * generation, verify the frame's HMAC under its rank's key, aggregate per step, and hand aggregated
 * points to the store in batches (one SQLite transaction per job per flush, never one write per frame).
 * Messages over `maxFrameBytes` make libzmq drop the sender's connection before buffering them.
 */
import * as zmq from 'zeromq';
import type {Logger} from 'pino';
import type {MetricPoint} from '../domain/types';
import {RateLimitedWarn} from '../log/rate-limited-warn';
import {decodeMetric} from '../transport/codec';
import {StepAggregator, type AggregatorCounters, type RankMetric} from './aggregator';
import {TelemetryKeys} from './telemetry-keys';

/** A real frame is about 100 bytes; 64 KiB leaves room for many extras and refuses floods of huge ones. */
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024;

/** What a user can do about each kind of dropped frame (the rate-limited warning says it). */
const ADVICE: Partial<Record<keyof AggregatorCounters | 'unsigned' | 'badMac', string>> = {
  unsigned: 'a sender without a MAC: a trainer older than this coordinator (upgrade byol_worker) or someone else on the telemetry port (firewall it)',
  badMac: 'a frame whose MAC does not verify: forged, or from a trainer of a stale assignment; firewall the telemetry port to your trainers\' hosts',
  outOfRange: 'a frame with a step outside [0, K), a rank outside the group, or too many extras: dropped',
  nonFinite: 'a frame with a NaN or infinite number (loss diverged?): check the job\'s logs',
  pendingFull: 'too many steps wait for missing ranks; is one rank far behind or sending garbage steps?',
};
export interface TelemetryIngestOptions {
  host: string;
  /** 0 = any free port */
  port: number;
  logger: Logger;
  /** Receives each job's new points, in step order, once per flush. */
  onBatch: (jobId: string, points: MetricPoint[]) => void;
  /** How often buffered points go to the store. Default 250. */
  flushIntervalMs?: number;
  /** How long a step waits for missing ranks. Default 2000. */
  stepTimeoutMs?: number;
  /** Keys frames are verified with. Default: a random secret (then no frame verifies). */
  keys?: TelemetryKeys;
  /** Largest message part accepted (ZeroMQ maxMessageSize). Default DEFAULT_MAX_FRAME_BYTES. */
  maxFrameBytes?: number;
}

export class TelemetryIngest {
  readonly aggregator: StepAggregator;
  /** Frames that did not decode as a Metric. */
  malformed = 0;
  /** Messages without exactly [Metric, 32-byte MAC]. */
  unsigned = 0;
  /** Messages of a current generation whose MAC did not verify. */
  badMac = 0;
  readonly keys: TelemetryKeys;
  private readonly warn: RateLimitedWarn;
  private sock: zmq.Pull | null = null;
  private buffer = new Map<string, MetricPoint[]>();
  private timer: NodeJS.Timeout | null = null;
  private loop: Promise<void> | null = null;
  private boundPort = 0;
  private readonly log: Logger;

  constructor(private readonly opts: TelemetryIngestOptions) {
    this.log = opts.logger.child({module: 'telemetry'});
    this.keys = opts.keys ?? TelemetryKeys.random();
    this.warn = new RateLimitedWarn(this.log);
    this.aggregator = new StepAggregator((jobId, p) => {
      let b = this.buffer.get(jobId);
      if (!b) this.buffer.set(jobId, (b = []));
      b.push(p);
    }, opts.stepTimeoutMs ?? 2000);
  }

  /** Binds and starts receiving; returns the tcp:// address trainers connect to. */
  async start(): Promise<string> {
    const sock = new zmq.Pull({receiveHighWaterMark: 100_000, linger: 0, maxMessageSize: this.opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES});
    await sock.bind(`tcp://${this.opts.host}:${this.opts.port}`);
    const endpoint = sock.lastEndpoint ?? '';
    this.boundPort = Number(endpoint.slice(endpoint.lastIndexOf(':') + 1));
    this.sock = sock;
    this.loop = this.receive(sock);
    this.timer = setInterval(() => this.flush(), this.opts.flushIntervalMs ?? 250);
    this.timer.unref();
    this.log.info({endpoint}, 'telemetry ingest listening');
    return `tcp://${this.opts.host}:${this.boundPort}`;
  }

  get port(): number {
    return this.boundPort;
  }

  /** Signs a frame as a trainer of (job, generation, rank) does (tests and benchmarks). */
  sign(frame: Uint8Array, jobId: string, generation: number, rank: number): Buffer {
    return TelemetryKeys.sign(this.keys.keyFor(jobId, generation, rank), frame);
  }

  /**
   * One message: [encoded Metric, HMAC-SHA256 of it]. Decoded first (bounded by maxFrameBytes) to
   * find its (job, generation, rank); the MAC is checked before anything reaches the aggregator.
   * Public so benchmarks and tests can feed messages without a socket.
   */
  ingestMessage(parts: Uint8Array[], nowMs: number): void {
    if (parts.length !== 2) {
      this.unsigned++;
      this.drop('unsigned', {parts: parts.length});
      return;
    }
    const [frame, mac] = parts;
    let m: RankMetric;
    try {
      m = decodeMetric(frame);
    } catch {
      this.malformed++;
      return;
    }
    if (this.aggregator.isCurrent(m.jobId, m.generation) &&
        !TelemetryKeys.verify(this.keys.keyFor(m.jobId, m.generation, m.rank), frame, mac)) {
      this.badMac++;
      this.drop('badMac', {jobId: m.jobId, generation: m.generation, rank: m.rank});
      return;
    }
    const why = this.aggregator.add(m, nowMs);
    if (why && ADVICE[why]) this.drop(why, {jobId: m.jobId, generation: m.generation, rank: m.rank, step: m.step});
  }

  private drop(reason: keyof typeof ADVICE, fields: Record<string, unknown>): void {
    this.warn.warn(reason, {reason, ...fields}, `telemetry frame dropped: ${ADVICE[reason]}`);
  }

  private async receive(sock: zmq.Pull): Promise<void> {
    try {
      for await (const parts of sock) this.ingestMessage(parts, Date.now());
    } catch (err) {
      if (!sock.closed) this.log.error({err}, 'telemetry receive loop stopped; metrics will not update until restart');
    }
  }

  /** Emits timed-out steps and writes buffered points. */
  flush(): void {
    this.aggregator.tick(Date.now());
    if (this.buffer.size === 0) return;
    const batches = this.buffer;
    this.buffer = new Map();
    for (const [jobId, points] of batches) {
      try {
        this.opts.onBatch(jobId, points);
      } catch (err) {
        this.log.error({err, jobId, points: points.length}, 'storing metrics failed; these points are lost');
      }
    }
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.flush();
    this.sock?.close();
    await this.loop;
  }
}
