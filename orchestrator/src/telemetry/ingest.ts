/**
 * ZeroMQ PULL ingest of byol.v1.Metric frames (docs/internals.md "Telemetry"): decode, fence by
 * generation, aggregate per step, and hand aggregated points to the store in batches
 * (one SQLite transaction per job per flush, never one write per frame).
 */
import * as zmq from 'zeromq';
import type {Logger} from 'pino';
import {byol} from '../gen/proto';
import type {MetricPoint} from '../domain/types';
import {StepAggregator} from './aggregator';

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
}

export class TelemetryIngest {
  readonly aggregator: StepAggregator;
  /** Frames that did not decode as a Metric. */
  malformed = 0;
  private sock: zmq.Pull | null = null;
  private buffer = new Map<string, MetricPoint[]>();
  private timer: NodeJS.Timeout | null = null;
  private loop: Promise<void> | null = null;
  private boundPort = 0;
  private readonly log: Logger;

  constructor(private readonly opts: TelemetryIngestOptions) {
    this.log = opts.logger.child({module: 'telemetry'});
    this.aggregator = new StepAggregator((jobId, p) => {
      let b = this.buffer.get(jobId);
      if (!b) this.buffer.set(jobId, (b = []));
      b.push(p);
    }, opts.stepTimeoutMs ?? 2000);
  }

  /** Binds and starts receiving; returns the tcp:// address trainers connect to. */
  async start(): Promise<string> {
    const sock = new zmq.Pull({receiveHighWaterMark: 100_000, linger: 0});
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

  /** Decodes one frame; public so benchmarks and tests can feed frames without a socket. */
  ingestFrame(frame: Uint8Array, nowMs: number): void {
    let m: byol.v1.Metric;
    try {
      m = byol.v1.Metric.decode(frame);
    } catch {
      this.malformed++;
      return;
    }
    // uint64 fields decode as Long when the `long` package is present: make them numbers here.
    this.aggregator.add({
      jobId: m.jobId, generation: Number(m.generation), rank: m.rank, worldSize: m.worldSize, step: Number(m.step),
      loss: m.loss, tau: m.tau, lr: m.lr, stepTimeS: m.stepTimeS, dataTimeS: m.dataTimeS,
      imagesPerSec: m.imagesPerSec, epoch: m.epoch, dropped: Number(m.dropped), extra: m.extra,
    }, nowMs);
  }

  private async receive(sock: zmq.Pull): Promise<void> {
    try {
      for await (const [frame] of sock) this.ingestFrame(frame, Date.now());
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
