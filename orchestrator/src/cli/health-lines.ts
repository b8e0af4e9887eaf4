/** Health alarms of a job as `byolctl status` warnings (and the health line of its details). */
import type {JobView} from '../domain/coordinator-api';

export function healthWarnings(j: JobView): string {
  return (j.health?.alarms ?? []).map((a) => `warning: ${j.id}: ${a.kind} since step ${a.sinceStep}: ${a.message}\n`).join('');
}

export function healthLine(j: JobView): string {
  const h = j.health;
  if (!h) return '';
  const f = (v: number | null, d: number) => (v === null ? '-' : v.toFixed(d));
  return `health:      cos(online, target) ${f(h.cosineSimilarity, 4)}, z_std ${f(h.zStd, 4)} (collapse below ` +
    `${h.collapseZStd.toPrecision(3)}), rank skew ${f(h.rankSkew, 2)}${h.slowestRank !== null ? ` (slowest rank ${h.slowestRank})` : ''}` +
    `${h.stalledRanks.length ? `, stalled ranks ${h.stalledRanks.join(',')}` : ''}\n`;
}
