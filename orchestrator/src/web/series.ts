/** The plot data of a job page, from its stored points, downsampled to the plot width (downsample.ts). */
import type {MetricPoint, RankSeries} from '../domain/types';
import {cosineFromLoss, ownTimeS} from '../health/health-rules';
import {bucketRanges, columnMeans, minMax, ROWS_PER_BUCKET, round4} from './downsample';

export interface JobSeries {
  /** Stored steps these plots summarise. */
  points: number;
  lastStep: number;
  /** x = steps; one array per scalar, aligned with x (min/max pairs when downsampled). */
  scalars: {x: number[]; loss: (number | null)[]; cos: (number | null)[]; lr: (number | null)[]; tau: (number | null)[];
    imagesPerSec: (number | null)[]};
  /** kNN top-1 at each monitor point: [step, accuracy]. */
  knn: [number, number][];
  /** Per rank, bucket means: [rank][bucket]. */
  ranks: {x: number[]; stepTimeS: (number | null)[][]; ownTimeS: (number | null)[][]; dataShare: (number | null)[][];
    zStd: (number | null)[][]};
}

const num = (v: number | undefined | null) => (v === undefined || v === null || !Number.isFinite(v) ? null : round4(v));

/** One point's plot values: also what the live stream sends, so the page appends the same shape. */
export function livePoint(p: MetricPoint) {
  return {
    step: p.step, loss: num(p.loss), cos: num(cosineFromLoss(p.loss)), lr: num(p.lr), tau: p.tau, imagesPerSec: num(p.imagesPerSec),
    knn: p.extra?.knn_top1 ?? null, stepTimeS: p.perRank?.stepTimeS ?? [], zStdRanks: p.perRank?.zStd ?? [],
    ownTimeS: (p.perRank?.stepTimeS ?? []).map((_t, r) => num(ownTimeS(p.perRank!, r))),
    dataShare: (p.perRank?.dataTimeS ?? []).map((d, r) => num(dataShare(d, p.perRank!.stepTimeS[r]))),
  };
}

function dataShare(d: number | null, t: number | null | undefined): number | null {
  return d === null || t === null || t === undefined || !(t > 0) ? null : Math.min(1, d / t);
}

const fin = (v: number | undefined | null) => (v === undefined || v === null || !Number.isFinite(v) ? null : v);
const rounded = (ys: (number | null)[]) => ys.map((v) => (v === null ? null : round4(v)));

/** Reads the per-rank values of some steps (CoordinatorApi.rankMetrics). */
export type RankReader = (steps: number[]) => Map<number, RankSeries>;

export function buildSeries(points: MetricPoint[], width: number, readRanks: RankReader): JobSeries {
  const x = points.map((p) => p.step);
  // Values stay raw while bucketing; only what is sent is rounded.
  const m = minMax(x, [
    points.map((p) => fin(p.loss)), points.map((p) => fin(cosineFromLoss(p.loss))), points.map((p) => fin(p.lr)),
    points.map((p) => p.tau), points.map((p) => fin(p.imagesPerSec)),
  ], width);
  const [loss, cos, lr, imagesPerSec] = [m.ys[0], m.ys[1], m.ys[2], m.ys[4]].map(rounded);
  const knn = points.filter((p) => p.extra?.knn_top1 !== undefined).map((p) => [p.step, p.extra!.knn_top1] as [number, number]);
  // Per rank: bucket means over a few sampled steps per bucket, read by step (a few thousand lookups).
  const ranges = bucketRanges(points.length, Math.max(1, Math.floor(width / 4))); // a point per 4 px per rank
  const sampled = sampleRows(ranges);
  const found = readRanks(sampled.map((i) => points[i].step));
  const rows: (RankSeries | undefined)[] = sampled.map((i) => found.get(points[i].step));
  const ranks = rows.reduce((n, r) => Math.max(n, r?.stepTimeS.length ?? 0), 0);
  const sampledRanges = sampledBuckets(ranges, sampled);
  const col = (f: (r: RankSeries, c: number) => number | null) => (i: number, c: number) => {
    const r = rows[i];
    return r ? f(r, c) : null;
  };
  return {
    points: points.length,
    lastStep: points.length ? points[points.length - 1].step : -1,
    scalars: {x: m.x, loss, cos, lr, tau: m.ys[3], imagesPerSec},
    knn,
    ranks: {
      x: ranges.map(([s, e]) => points[Math.floor((s + e - 1) / 2)].step),
      stepTimeS: columnMeans(col((r, c) => r.stepTimeS[c]), ranks, sampledRanges),
      ownTimeS: columnMeans(col((r, c) => ownTimeS(r, c)), ranks, sampledRanges),
      dataShare: columnMeans(col((r, c) => dataShare(r.dataTimeS[c], r.stepTimeS[c])), ranks, sampledRanges),
      zStd: columnMeans(col((r, c) => r.zStd[c]), ranks, sampledRanges),
    },
  };
}

/** Indices of up to ROWS_PER_BUCKET evenly spaced rows of each bucket, in order. */
function sampleRows(ranges: [number, number][]): number[] {
  const out: number[] = [];
  for (const [s, e] of ranges) {
    const stride = Math.max(1, Math.ceil((e - s) / ROWS_PER_BUCKET));
    for (let i = s; i < e; i += stride) out.push(i);
  }
  return out;
}

/** The buckets re-expressed as ranges over the sampled rows. */
function sampledBuckets(ranges: [number, number][], sampled: number[]): [number, number][] {
  const out: [number, number][] = [];
  let j = 0;
  for (const [, e] of ranges) {
    const s = j;
    while (j < sampled.length && sampled[j] < e) j++;
    out.push([s, j]);
  }
  return out;
}
