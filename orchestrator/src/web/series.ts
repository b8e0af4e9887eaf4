/** The plot data of a job page, from its stored points, downsampled to the plot width (downsample.ts). */
import type {MetricPoint} from '../domain/types';
import {cosineFromLoss} from '../health/health-rules';
import {bucketRanges, columnMeans, minMax, round4} from './downsample';

export interface JobSeries {
  /** Stored steps these plots summarise. */
  points: number;
  lastStep: number;
  /** x = steps; one array per scalar, aligned with x (min/max pairs when downsampled). */
  scalars: {x: number[]; loss: (number | null)[]; cos: (number | null)[]; lr: (number | null)[]; tau: (number | null)[];
    imagesPerSec: (number | null)[]; zStd: (number | null)[]};
  /** kNN top-1 at each monitor point: [step, accuracy]. */
  knn: [number, number][];
  /** Per rank, bucket means: [rank][bucket]. */
  ranks: {x: number[]; stepTimeS: (number | null)[][]; dataShare: (number | null)[][]; zStd: (number | null)[][]};
}

const num = (v: number | undefined | null) => (v === undefined || v === null || !Number.isFinite(v) ? null : round4(v));

function meanZ(p: MetricPoint): number | null {
  const zs = (p.perRank?.zStd ?? []).filter((z): z is number => z !== null);
  return zs.length ? zs.reduce((a, b) => a + b, 0) / zs.length : num(p.extra?.z_std);
}

/** One point's plot values: also what the live stream sends, so the page appends the same shape. */
export function livePoint(p: MetricPoint) {
  return {
    step: p.step, loss: num(p.loss), cos: num(cosineFromLoss(p.loss)), lr: num(p.lr), tau: p.tau, imagesPerSec: num(p.imagesPerSec),
    zStd: num(meanZ(p)), knn: p.extra?.knn_top1 ?? null, stepTimeS: p.perRank?.stepTimeS ?? [], zStdRanks: p.perRank?.zStd ?? [],
    dataShare: (p.perRank?.dataTimeS ?? []).map((d, r) => dataShare(d, p.perRank!.stepTimeS[r])),
  };
}

function dataShare(d: number | null, t: number | null | undefined): number | null {
  return d === null || t === null || t === undefined || !(t > 0) ? null : round4(Math.min(1, d / t));
}

export function buildSeries(points: MetricPoint[], width: number): JobSeries {
  const x = points.map((p) => p.step);
  const m = minMax(x, [
    points.map((p) => num(p.loss)), points.map((p) => num(cosineFromLoss(p.loss))), points.map((p) => num(p.lr)),
    points.map((p) => p.tau), points.map((p) => num(p.imagesPerSec)), points.map((p) => num(meanZ(p))),
  ], width);
  const [loss, cos, lr, tau, imagesPerSec, zStd] = m.ys;
  const knn = points.filter((p) => p.extra?.knn_top1 !== undefined).map((p) => [p.step, p.extra!.knn_top1] as [number, number]);
  const ranks = points.reduce((n, p) => Math.max(n, p.perRank?.stepTimeS.length ?? 0), 0);
  const ranges = bucketRanges(points.length, Math.max(1, Math.floor(width / 2)));
  const rows = (f: (p: MetricPoint) => (number | null)[]) => points.map(f);
  return {
    points: points.length,
    lastStep: points.length ? points[points.length - 1].step : -1,
    scalars: {x: m.x, loss, cos, lr, tau, imagesPerSec, zStd},
    knn,
    ranks: {
      x: ranges.map(([s, e]) => points[Math.floor((s + e - 1) / 2)].step),
      stepTimeS: columnMeans(rows((p) => p.perRank?.stepTimeS ?? []), ranks, ranges),
      dataShare: columnMeans(rows((p) => (p.perRank?.dataTimeS ?? []).map((d, r) => dataShare(d, p.perRank!.stepTimeS[r]))), ranks, ranges),
      zStd: columnMeans(rows((p) => p.perRank?.zStd ?? []), ranks, ranges),
    },
  };
}
