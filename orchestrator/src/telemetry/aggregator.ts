/**
 * Per-step aggregation across ranks (docs/architecture.md §9): mean loss, total images/s, slowest rank's
 * step and data time. A step is emitted once every rank of the generation reported it, or after
 * `stepTimeoutMs` with the ranks that did. Frames of other generations are dropped and counted,
 * and so are implausible ones (a step outside [0, K), a rank outside the group, a non-finite number):
 * one bad frame must not freeze a job's metrics or open an unbounded number of pending steps.
 */
import type {MetricPoint, RankSeries} from '../domain/types';

/** The fields of a decoded byol.v1.Metric the aggregator uses. */
export interface RankMetric {
  jobId: string; generation: number; rank: number; worldSize: number; step: number;
  loss: number; tau: number; lr: number; stepTimeS: number; dataTimeS: number;
  imagesPerSec: number; epoch: number; dropped: number; extra?: Record<string, number>;
  /** Wait for the other ranks inside the step (frames without it: 0). */
  syncWaitS?: number;
}

/** 4 significant digits: per-rank values are for plots and alarms, and 64 ranks x 100k steps must stay small. */
export function round4(v: number): number {
  return Number.isFinite(v) ? Number(v.toPrecision(4)) : v;
}

function emptySeries(n: number): RankSeries {
  return {stepTimeS: new Array(n).fill(null), dataTimeS: new Array(n).fill(null), zStd: new Array(n).fill(null),
    syncWaitS: new Array(n).fill(null)};
}

interface Pending {
  point: MetricPoint;
  lossSum: number;
  seen: Set<number>;
  firstMs: number;
}

interface JobTrack {
  generation: number;
  worldSize: number;
  totalSteps: number;
  pending: Map<number, Pending>;
  lastEmittedStep: number;
  latest: MetricPoint | null;
  droppedByRank: Map<number, number>;
}

export interface AggregatorCounters {
  frames: number; stale: number; unknownJob: number; late: number;
  /** Dropped as implausible: step outside [0, K), rank outside the group, too many extras. */
  outOfRange?: number;
  nonFinite?: number;
  /** Dropped because the job already waits on MAX_PENDING_STEPS steps. */
  pendingFull?: number;
}

/** Steps a job may wait on at once (a rank 2 s behind at 1000 steps/s stays well inside). */
export const MAX_PENDING_STEPS = 4096;
/** `extra` entries per frame and the length of their names. */
export const MAX_EXTRAS = 16;
const MAX_EXTRA_NAME = 64;
const NUMBERS: (keyof RankMetric)[] = ['loss', 'tau', 'lr', 'stepTimeS', 'dataTimeS', 'imagesPerSec', 'epoch', 'dropped'];

/** Why a frame is implausible, or null. */
export function implausible(m: RankMetric, worldSize: number, totalSteps: number): 'outOfRange' | 'nonFinite' | null {
  if (!Number.isSafeInteger(m.step) || m.step < 0 || m.step >= totalSteps) return 'outOfRange';
  if (!Number.isInteger(m.rank) || m.rank < 0 || m.rank >= worldSize) return 'outOfRange';
  for (const k of NUMBERS) if (!Number.isFinite(m[k] as number)) return 'nonFinite';
  if (m.syncWaitS !== undefined && !Number.isFinite(m.syncWaitS)) return 'nonFinite';
  const extra = Object.entries(m.extra ?? {});
  if (extra.length > MAX_EXTRAS || extra.some(([k]) => k.length > MAX_EXTRA_NAME)) return 'outOfRange';
  if (extra.some(([, v]) => !Number.isFinite(v))) return 'nonFinite';
  return null;
}

export class StepAggregator {
  private readonly jobs = new Map<string, JobTrack>();
  readonly counters: Required<AggregatorCounters> = {frames: 0, stale: 0, unknownJob: 0, late: 0, outOfRange: 0, nonFinite: 0, pendingFull: 0};

  constructor(private readonly onPoint: (jobId: string, p: MetricPoint) => void, private readonly stepTimeoutMs = 2000) {}

  /**
   * The current generation of a job; frames of any other generation are stale from now on.
   * `totalSteps` (K) bounds the steps a frame may name (k in [0, K)).
   */
  setGeneration(jobId: string, generation: number, worldSize: number, totalSteps = Number.MAX_SAFE_INTEGER): void {
    const prev = this.jobs.get(jobId);
    if (prev && prev.generation === generation) {
      prev.worldSize = worldSize;
      prev.totalSteps = totalSteps;
      return;
    }
    if (prev) this.flushAll(prev, jobId);
    this.jobs.set(jobId, {
      generation, worldSize, totalSteps, pending: new Map(), lastEmittedStep: -1,
      latest: prev?.latest ?? null, droppedByRank: new Map(),
    });
  }

  forget(jobId: string): void {
    const t = this.jobs.get(jobId);
    if (t) this.flushAll(t, jobId);
    this.jobs.delete(jobId);
  }

  /** True when frames of (job, generation) are wanted now (worth checking their MAC). */
  isCurrent(jobId: string, generation: number): boolean {
    return this.jobs.get(jobId)?.generation === generation;
  }

  latest(jobId: string): MetricPoint | null {
    return this.jobs.get(jobId)?.latest ?? null;
  }

  /** Frames the trainers of a job dropped before sending (sum over ranks of the latest counts). */
  droppedAtSource(jobId: string): number {
    let n = 0;
    for (const v of this.jobs.get(jobId)?.droppedByRank.values() ?? []) n += v;
    return n;
  }

  /** Adds one rank's frame; returns why it was dropped (a counter name), or null when taken. */
  add(m: RankMetric, nowMs: number): keyof AggregatorCounters | null {
    this.counters.frames++;
    const t = this.jobs.get(m.jobId);
    if (!t) {
      this.counters.unknownJob++;
      return 'unknownJob';
    }
    if (m.generation !== t.generation) {
      this.counters.stale++;
      return 'stale';
    }
    const bad = implausible(m, t.worldSize, t.totalSteps);
    if (bad) {
      this.counters[bad]++;
      return bad;
    }
    if (m.step <= t.lastEmittedStep && !t.pending.has(m.step)) {
      this.counters.late++;
      return 'late';
    }
    let p = t.pending.get(m.step);
    if (!p && t.pending.size >= MAX_PENDING_STEPS) {
      this.counters.pendingFull++;
      return 'pendingFull';
    }
    t.droppedByRank.set(m.rank, m.dropped);
    if (!p) {
      p = {
        point: {
          step: m.step, generation: m.generation, loss: 0, tau: m.tau, lr: m.lr, imagesPerSec: 0,
          stepTimeS: -1, dataTimeS: 0, slowestRank: m.rank, ranks: 0, epoch: m.epoch, tMs: nowMs,
        },
        lossSum: 0, seen: new Set(), firstMs: nowMs,
      };
      p.point.perRank = emptySeries(Math.max(t.worldSize, m.rank + 1));
      t.pending.set(m.step, p);
    }
    if (p.seen.has(m.rank)) return null; // a duplicate frame adds nothing
    p.seen.add(m.rank);
    const pt = p.point;
    p.lossSum += m.loss;
    pt.ranks = p.seen.size;
    pt.loss = p.lossSum / pt.ranks;
    pt.imagesPerSec += m.imagesPerSec;
    if (m.stepTimeS > pt.stepTimeS) {
      pt.stepTimeS = m.stepTimeS;
      pt.slowestRank = m.rank;
    }
    pt.dataTimeS = Math.max(pt.dataTimeS, m.dataTimeS);
    const pr = pt.perRank!;
    pr.stepTimeS[m.rank] = round4(m.stepTimeS);
    pr.dataTimeS[m.rank] = round4(m.dataTimeS);
    pr.syncWaitS![m.rank] = round4(Math.max(0, m.syncWaitS ?? 0));
    const z = m.extra?.z_std;
    pr.zStd[m.rank] = z === undefined ? null : Number.isFinite(z) ? round4(z) : null;
    pt.epoch = Math.max(pt.epoch, m.epoch);
    if (m.extra && Object.keys(m.extra).length > 0) pt.extra = {...pt.extra, ...m.extra};
    if (p.seen.size >= t.worldSize) this.emit(t, m.jobId, m.step, p);
    return null;
  }

  /** Emits steps that waited longer than the timeout (a rank dropped its frame). */
  tick(nowMs: number): void {
    for (const [jobId, t] of this.jobs) {
      for (const [step, p] of t.pending) if (nowMs - p.firstMs >= this.stepTimeoutMs) this.emit(t, jobId, step, p);
    }
  }

  private flushAll(t: JobTrack, jobId: string): void {
    for (const [step, p] of [...t.pending].sort((a, b) => a[0] - b[0])) this.emit(t, jobId, step, p);
  }

  private emit(t: JobTrack, jobId: string, step: number, p: Pending): void {
    t.pending.delete(step);
    if (p.point.stepTimeS < 0) p.point.stepTimeS = 0;
    t.lastEmittedStep = Math.max(t.lastEmittedStep, step);
    if (!t.latest || step >= t.latest.step || t.latest.generation !== p.point.generation) t.latest = p.point;
    this.onPoint(jobId, p.point);
  }
}
