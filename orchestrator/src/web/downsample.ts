/**
 * Server-side downsampling for the dashboard: the browser gets at most about `width` buckets per plot,
 * whatever the number of stored steps. Scalars keep each bucket's min and max (spikes stay visible);
 * per-rank series keep each bucket's mean (64 lines x width points is what a plot can draw).
 */
import {round4} from '../telemetry/aggregator';

export {round4};

/** Bucket boundaries over n items: [start, end) index pairs, at most `buckets` of them. */
export function bucketRanges(n: number, buckets: number): [number, number][] {
  const b = Math.max(1, Math.min(n, Math.floor(buckets)));
  const out: [number, number][] = [];
  for (let i = 0; i < b; i++) {
    const s = Math.floor((i * n) / b);
    const e = Math.floor(((i + 1) * n) / b);
    if (e > s) out.push([s, e]);
  }
  return out;
}

/**
 * Min/max envelope: two points per bucket (at its first and last x), the bucket's min then max of each
 * series. Returns the input unchanged when it already fits in 2 x buckets points.
 */
export function minMax(x: number[], ys: (number | null)[][], buckets: number): {x: number[]; ys: (number | null)[][]} {
  if (x.length <= 2 * buckets) return {x, ys};
  const ranges = bucketRanges(x.length, buckets);
  const outX: number[] = [];
  const outYs: (number | null)[][] = ys.map(() => []);
  for (const [s, e] of ranges) {
    outX.push(x[s], x[e - 1]);
    ys.forEach((y, k) => {
      let lo = Infinity;
      let hi = -Infinity;
      for (let i = s; i < e; i++) {
        const v = y[i];
        if (v === null || !Number.isFinite(v)) continue;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      outYs[k].push(lo === Infinity ? null : lo, hi === -Infinity ? null : hi);
    });
  }
  return {x: outX, ys: outYs};
}

/** Rows read per bucket for the per-rank means: enough for a mean, and 64 ranks x 100k steps stay cheap. */
export const ROWS_PER_BUCKET = 8;

/** Bucket means of rows (one row per step, one column per rank; `at` reads a cell): returns [column][bucket]. */
export function columnMeans(at: (row: number, column: number) => number | null | undefined, columns: number,
  ranges: [number, number][]): (number | null)[][] {
  const out: (number | null)[][] = Array.from({length: columns}, () => []);
  const sums = new Float64Array(columns);
  const counts = new Uint32Array(columns);
  for (const [s, e] of ranges) {
    sums.fill(0);
    counts.fill(0);
    for (let i = s; i < e; i++) {
      for (let c = 0; c < columns; c++) {
        const v = at(i, c);
        if (v !== null && v !== undefined && Number.isFinite(v)) {
          sums[c] += v;
          counts[c]++;
        }
      }
    }
    for (let c = 0; c < columns; c++) out[c].push(counts[c] > 0 ? round4(sums[c] / counts[c]) : null);
  }
  return out;
}
