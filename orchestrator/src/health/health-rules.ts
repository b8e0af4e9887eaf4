/**
 * Health rules across a job's ranks, as pure functions of aggregated per-step points (no I/O):
 * collapse (z_std below a threshold over a window), online/target cosine similarity, rank skew.
 */
import presets from '../../../contract/presets.json';
import type {MetricPoint, RankSeries} from '../domain/types';

/** The job spec's `health` section, resolved (presets.json holds the defaults). */
export interface HealthPolicy {
  onCollapse: 'warn' | 'stop';
  /** z_std x sqrt(projector outDim) below this is collapse: a healthy projection gives about 1. */
  collapseThreshold: number;
  collapseWindowSteps: number;
  /** A rank with no frame for this long, while the job runs, is stalled. */
  stallSeconds: number;
  /** Slowest rank's mean own time (step time - sync wait) over the median's above this raises the skew alarm. */
  skewThreshold: number;
}

/** presets.json's defaults: the one source, also for jobs stored before the `health` section existed. */
export const DEFAULT_POLICY = presets.defaults.health as HealthPolicy;

export function policyOf(spec: Record<string, any>): HealthPolicy {
  return {...DEFAULT_POLICY, ...(spec.health ?? {})};
}

/** The collapse threshold in z_std units for this spec: the ratio over sqrt(outDim) of l2-normalised z. */
export function collapseZStd(spec: Record<string, any>, policy: HealthPolicy): number {
  const outDim = Number(spec.model?.projector?.outDim ?? 256);
  return policy.collapseThreshold / Math.sqrt(outDim > 0 ? outDim : 256);
}

/** Each rank's loss is 2 - 2cos(view 1) + 2 - 2cos(view 2), so the mean cosine is 1 - loss/4. */
export function cosineFromLoss(loss: number): number | null {
  return Number.isFinite(loss) ? 1 - loss / 4 : null;
}

function mean(xs: number[]): number | null {
  return xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Mean z_std over the ranks that reported it at this step. */
export function meanZStd(p: MetricPoint): number | null {
  const zs = (p.perRank?.zStd ?? []).filter((z): z is number => z !== null && Number.isFinite(z));
  if (zs.length === 0 && p.extra?.z_std !== undefined) return p.extra.z_std;
  return mean(zs);
}

/** True when the window is full and every step's mean z_std in it is below the threshold. */
export function isCollapsed(window: MetricPoint[], threshold: number, windowSteps: number): boolean {
  const recent = window.slice(-windowSteps);
  if (recent.length < windowSteps) return false;
  return recent.every((p) => {
    const z = meanZStd(p);
    return z !== null && z < threshold;
  });
}

/**
 * A rank's own time in a step: its step time less the time it waited for the other ranks. Ranks train in
 * lockstep, so every rank's step time is about the slowest one's; only the own time shows who is slow.
 * Points without the wait (older trainers, stored points) count it as 0. Null when the rank sent no frame.
 */
export function ownTimeS(s: RankSeries, rank: number): number | null {
  const t = s.stepTimeS[rank];
  if (t === null || t === undefined) return null;
  return Math.max(0, t - (s.syncWaitS?.[rank] ?? 0));
}

/** Slowest rank's mean own time over the median rank's, over the window; null with fewer than 2 ranks. */
export function rankSkew(window: MetricPoint[]): {skew: number; slowestRank: number} | null {
  const sums: number[] = [];
  const counts: number[] = [];
  for (const p of window) {
    const s = p.perRank;
    if (!s) continue;
    s.stepTimeS.forEach((_t, r) => {
      const own = ownTimeS(s, r);
      if (own === null) return;
      sums[r] = (sums[r] ?? 0) + own;
      counts[r] = (counts[r] ?? 0) + 1;
    });
  }
  const perRank = sums.map((s, r) => ({r, t: s / counts[r]})).filter((x) => x !== undefined && Number.isFinite(x.t));
  if (perRank.length < 2) return null;
  const med = median(perRank.map((x) => x.t));
  const slow = perRank.reduce((a, b) => (b.t > a.t ? b : a));
  return {skew: med > 0 ? slow.t / med : 1, slowestRank: slow.r};
}
