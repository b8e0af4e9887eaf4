/** Prometheus gauges for /metrics (the api helper serves the registry). */
import {Counter, Gauge, Registry, collectDefaultMetrics} from 'prom-client';
import type {MetricPoint} from '../domain/types';
import type {AggregatorCounters} from './aggregator';

export class CoordinatorMetrics {
  readonly registry = new Registry();
  private readonly loss: Gauge;
  private readonly step: Gauge;
  private readonly imgs: Gauge;
  private readonly lr: Gauge;
  private readonly tau: Gauge;
  readonly recoveries: Counter;
  /** Agent reports of a fenced (older) generation, dropped. */
  readonly staleReports: Counter;
  /** Agent reports refused as unauthorised or implausible, by kind and reason. */
  readonly rejectedReports: Counter;

  constructor(counters: () => AggregatorCounters & {malformed: number; unsigned?: number; badMac?: number}, agents: () => number, jobsByState: () => Record<string, number>) {
    const r = this.registry;
    collectDefaultMetrics({register: r, prefix: 'byol_coordinator_'});
    const job = ['job'];
    this.loss = new Gauge({name: 'byol_job_loss', help: 'mean BYOL loss over ranks at the latest step', labelNames: job, registers: [r]});
    this.step = new Gauge({name: 'byol_job_step', help: 'latest global optimizer step with metrics', labelNames: job, registers: [r]});
    this.imgs = new Gauge({name: 'byol_job_images_per_second', help: 'source images per second, all ranks', labelNames: job, registers: [r]});
    this.lr = new Gauge({name: 'byol_job_learning_rate', help: 'learning rate at the latest step', labelNames: job, registers: [r]});
    this.tau = new Gauge({name: 'byol_job_tau', help: 'EMA tau at the latest step', labelNames: job, registers: [r]});
    this.recoveries = new Counter({name: 'byol_job_recoveries_total', help: 'generations ended by a fault', labelNames: job, registers: [r]});
    this.staleReports = new Counter({name: 'byol_stale_reports_total', help: 'agent reports of a fenced generation, dropped', registers: [r]});
    this.rejectedReports = new Counter({
      name: 'byol_rejected_reports_total', help: 'agent reports dropped as unauthorised (not the holder of that rank) or implausible, by kind and reason',
      labelNames: ['kind', 'reason'], registers: [r],
    });
    new Gauge({
      name: 'byol_telemetry_frames_total', help: 'telemetry frames received, by outcome', labelNames: ['outcome'], registers: [r],
      collect() {
        const c = counters();
        this.set({outcome: 'received'}, c.frames);
        this.set({outcome: 'stale_generation'}, c.stale);
        this.set({outcome: 'unknown_job'}, c.unknownJob);
        this.set({outcome: 'late'}, c.late);
        this.set({outcome: 'malformed'}, c.malformed);
        this.set({outcome: 'unsigned'}, c.unsigned ?? 0);
        this.set({outcome: 'bad_mac'}, c.badMac ?? 0);
        this.set({outcome: 'out_of_range'}, c.outOfRange ?? 0);
        this.set({outcome: 'non_finite'}, c.nonFinite ?? 0);
        this.set({outcome: 'pending_full'}, c.pendingFull ?? 0);
      },
    });
    new Gauge({name: 'byol_agents_connected', help: 'agents with an open stream', registers: [r], collect() { this.set(agents()); }});
    new Gauge({
      name: 'byol_jobs', help: 'jobs by state', labelNames: ['state'], registers: [r],
      collect() { for (const [s, n] of Object.entries(jobsByState())) this.set({state: s}, n); },
    });
  }

  observe(jobId: string, p: MetricPoint): void {
    this.loss.set({job: jobId}, p.loss);
    this.step.set({job: jobId}, p.step);
    this.imgs.set({job: jobId}, p.imagesPerSec);
    this.lr.set({job: jobId}, p.lr);
    this.tau.set({job: jobId}, p.tau);
  }
}
