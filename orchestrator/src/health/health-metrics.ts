/** Prometheus gauges for health across ranks, read from the monitor at scrape time. */
import {Gauge, type Registry} from 'prom-client';
import type {HealthAlarm} from '../domain/types';
import type {HealthMonitor} from './health-monitor';

const KINDS: HealthAlarm['kind'][] = ['collapse', 'rank-skew', 'stalled-ranks'];

export function registerHealthMetrics(registry: Registry, monitor: HealthMonitor, jobIds: () => string[]): void {
  const each = (fn: (id: string) => void) => {
    for (const id of jobIds()) fn(id);
  };
  new Gauge({
    name: 'byol_job_health_alarm', help: '1 while a health alarm is raised (collapse, rank-skew, stalled-ranks)',
    labelNames: ['job', 'alarm'], registers: [registry],
    collect() {
      this.reset();
      each((id) => {
        const h = monitor.health(id);
        if (h) for (const k of KINDS) this.set({job: id, alarm: k}, h.alarms.some((a) => a.kind === k) ? 1 : 0);
      });
    },
  });
  const gauge = (name: string, help: string, pick: (id: string) => number | null | undefined) => new Gauge({
    name, help, labelNames: ['job'], registers: [registry],
    collect() {
      this.reset();
      each((id) => {
        const v = pick(id);
        if (v !== null && v !== undefined && Number.isFinite(v)) this.set({job: id}, v);
      });
    },
  });
  gauge('byol_job_cosine_similarity', 'mean online/target cosine similarity at the latest step (1 - loss/4)', (id) => monitor.health(id)?.cosineSimilarity);
  gauge('byol_job_z_std', 'mean z_std over ranks at the latest step (collapse monitor)', (id) => monitor.health(id)?.zStd);
  gauge('byol_job_rank_skew', 'slowest rank mean step time over the median rank, recent window', (id) => monitor.health(id)?.rankSkew);
}
