/**
 * Per-job health across ranks from the aggregated per-step points the coordinator already stores:
 * keeps a short window per job, evaluates the rules, and reports alarms when they start and clear.
 */
import type {HealthAlarm, JobHealth, MetricPoint} from '../domain/types';
import {collapseZStd, cosineFromLoss, isCollapsed, meanZStd, policyOf, rankSkew, type HealthPolicy} from './health-rules';

export type AlarmChange = (jobId: string, alarm: HealthAlarm, raised: boolean) => void;

interface JobWatch {
  policy: HealthPolicy;
  threshold: number;
  generation: number;
  window: MetricPoint[];
  lastSeenMs: number[];
  alarms: Map<HealthAlarm['kind'], HealthAlarm>;
  stalled: number[];
}

/** Steps of the skew window, also kept per job (the collapse window may ask for more). */
const SKEW_WINDOW = 20;
/** Finished jobs whose last health is kept. */
const ENDED_KEPT = 256;

export class HealthMonitor {
  private readonly jobs = new Map<string, JobWatch>();
  private readonly ended = new Map<string, JobHealth>();

  constructor(private readonly onChange: AlarmChange) {}

  /** Starts (or restarts, on a new generation) watching a job with its spec's policy. */
  watch(jobId: string, spec: Record<string, any>, generation: number): void {
    const policy = policyOf(spec);
    const prev = this.jobs.get(jobId);
    if (prev && prev.generation === generation) return;
    this.ended.delete(jobId);
    const alarms = prev?.alarms ?? new Map();
    this.jobs.set(jobId, {policy, threshold: collapseZStd(spec, policy), generation, window: [], lastSeenMs: [], alarms, stalled: []});
    this.set(jobId, 'stalled-ranks', null); // a new generation has new ranks
  }

  /** Stops watching; the last health stays readable (bounded) so a finished job still shows its alarms. */
  forget(jobId: string): void {
    const last = this.health(jobId);
    this.jobs.delete(jobId);
    if (!last) return;
    this.ended.set(jobId, last);
    if (this.ended.size > ENDED_KEPT) this.ended.delete(this.ended.keys().next().value!);
  }

  observe(jobId: string, points: MetricPoint[]): void {
    const w = this.jobs.get(jobId);
    if (!w) return;
    for (const p of points) {
      if (p.generation !== w.generation) continue;
      w.window.push(p);
      p.perRank?.stepTimeS.forEach((t, r) => {
        if (t !== null) w.lastSeenMs[r] = p.tMs;
      });
    }
    const keep = Math.max(SKEW_WINDOW, w.policy.collapseWindowSteps);
    if (w.window.length > keep) w.window.splice(0, w.window.length - keep);
    const last = w.window[w.window.length - 1];
    if (!last) return;
    const collapsed = isCollapsed(w.window, w.threshold, w.policy.collapseWindowSteps);
    const z = meanZStd(last);
    this.set(jobId, 'collapse', collapsed ? {
      kind: 'collapse', sinceStep: last.step - w.policy.collapseWindowSteps + 1,
      message: `representation collapse: mean z_std ${z?.toExponential(2)} below ${w.threshold.toExponential(2)} ` +
        `for ${w.policy.collapseWindowSteps} steps (step ${last.step}); lower the LR or weight decay, or check the augmentations`,
    } : null);
    // Judged over a full window only: the first steps carry each rank's own start-up, not its speed.
    const recent = w.window.slice(-SKEW_WINDOW);
    const skew = recent.length >= SKEW_WINDOW ? rankSkew(recent) : null;
    this.set(jobId, 'rank-skew', skew && skew.skew > w.policy.skewThreshold ? {
      kind: 'rank-skew', sinceStep: last.step,
      message: `rank ${skew.slowestRank} is ${skew.skew.toFixed(2)}x slower than the median rank (own time: step time less ` +
        `its wait for the other ranks, over ${SKEW_WINDOW} steps); check its host (load, data path, throttling)`,
    } : null);
  }

  /** Stalled ranks: no frame for stallSeconds while the job runs (`live` says which jobs do). */
  tick(nowMs: number, live: (jobId: string) => number | null): void {
    for (const [jobId, w] of this.jobs) {
      const worldSize = live(jobId);
      if (worldSize === null || w.window.length === 0) continue;
      const seen = w.lastSeenMs.filter((x) => x !== undefined);
      if (seen.length === 0) continue; // points without per-rank values say nothing about single ranks
      const limit = w.policy.stallSeconds * 1000;
      const newest = Math.max(...seen);
      const stalled = [...Array(worldSize).keys()].filter((r) => nowMs - (w.lastSeenMs[r] ?? newest) > limit);
      w.stalled = stalled;
      this.set(jobId, 'stalled-ranks', stalled.length > 0 ? {
        kind: 'stalled-ranks', sinceStep: w.window[w.window.length - 1].step,
        message: `rank(s) ${stalled.join(', ')} sent no step for over ${w.policy.stallSeconds} s; see \`byolctl logs\` and the agents' logs`,
      } : null);
    }
  }

  health(jobId: string): JobHealth | undefined {
    const w = this.jobs.get(jobId);
    if (!w) return this.ended.get(jobId);
    const last = w.window[w.window.length - 1];
    const skew = rankSkew(w.window.slice(-SKEW_WINDOW));
    return {
      step: last?.step ?? 0,
      cosineSimilarity: last ? cosineFromLoss(last.loss) : null,
      zStd: last ? meanZStd(last) : null,
      collapseZStd: w.threshold,
      rankSkew: skew?.skew ?? null,
      slowestRank: skew?.slowestRank ?? null,
      stalledRanks: w.stalled,
      alarms: [...w.alarms.values()],
    };
  }

  /** Jobs being watched. */
  jobIds(): string[] {
    return [...this.jobs.keys()];
  }

  policy(jobId: string): HealthPolicy | undefined {
    return this.jobs.get(jobId)?.policy;
  }

  private set(jobId: string, kind: HealthAlarm['kind'], alarm: HealthAlarm | null): void {
    const w = this.jobs.get(jobId);
    if (!w) return;
    const had = w.alarms.get(kind);
    if (alarm && !had) {
      w.alarms.set(kind, alarm);
      this.onChange(jobId, alarm, true);
    } else if (alarm && had) {
      w.alarms.set(kind, {...alarm, sinceStep: had.sinceStep});
    } else if (!alarm && had) {
      w.alarms.delete(kind);
      this.onChange(jobId, had, false);
    }
  }
}
