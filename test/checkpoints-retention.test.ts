import {describe, expect, test} from '@jest/globals';
import {mkdtempSync, mkdirSync, existsSync, readFileSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import pino from 'pino';
import {CheckpointRegistry} from '../orchestrator/src/checkpoints/checkpoint-registry';
import {stepsToDelete} from '../orchestrator/src/checkpoints/retention';
import {openStore} from '../orchestrator/src/store';
import type {Job} from '../orchestrator/src/domain/types';

describe('stepsToDelete', () => {
  test('keeps the last N', () => {
    expect(stepsToDelete([10, 20, 30, 40], 2, 0)).toEqual([10, 20]);
  });
  test('keeps every M steps too', () => {
    expect(stepsToDelete([5, 10, 15, 20, 25], 1, 10)).toEqual([5, 15]);
  });
  test('always keeps the newest, even with keepLast 0', () => {
    expect(stepsToDelete([1, 2], 0, 0)).toEqual([1]);
  });
  test('the shared vectors (worker-py checks its standalone prune against the same file)', () => {
    const {cases} = JSON.parse(readFileSync(join(__dirname, 'vectors', 'retention.json'), 'utf8')) as
      {cases: {steps: number[]; keepLast: number; keepEvery: number; kept: number[]}[]};
    expect(cases.length).toBeGreaterThanOrEqual(10);
    for (const c of cases) {
      const gone = stepsToDelete(c.steps, c.keepLast, c.keepEvery);
      expect({...c, kept: [...new Set(c.steps)].filter((s) => !gone.includes(s)).sort((a, b) => a - b)}).toEqual(c);
    }
  });
});

describe('CheckpointRegistry', () => {
  const dir = mkdtempSync(join(tmpdir(), 'byol-ckpt-'));
  const store = openStore(join(dir, 'store.db'));
  const job: Job = {
    id: 'j-1', name: 'j', priority: 0, state: 'RUNNING', spec: {apiVersion: 'byol/v1', kind: 'PretrainJob', metadata: {name: 'j'}, spec: {}},
    specHash: 'x', schedule: {totalSteps: 10, warmupSteps: 1, peakLr: 1, tauBase: 0.99, tauSchedule: 'cosine', stepsPerEpoch: 1, globalBatch: 8, microBatch: 4, accumulation: 1},
    submittedAtMs: 0, startedAtMs: null, finishedAtMs: null, step: 0, totalSteps: 10, generation: 1, message: null, result: null,
  };
  store.insertJob(job);
  const root = join(dir, 'ckpt', job.id);
  const reg = new CheckpointRegistry(store, pino({level: 'silent'}));
  const report = (step: number) => {
    const path = join(root, `step-${String(step).padStart(9, '0')}`);
    mkdirSync(path, {recursive: true});
    return {jobId: job.id, step, ok: true, path, bytes: 100, sha256: 'ab', error: ''};
  };

  test('records, deletes older folders after the newer one is recorded, and picks the latest good', () => {
    const r1 = report(2); const r2 = report(4); const r3 = report(6);
    reg.record(r1, root, 2, 0);
    reg.record(r2, root, 2, 0);
    expect(existsSync(r1.path)).toBe(true);
    reg.record(r3, root, 2, 0);
    expect(existsSync(r1.path)).toBe(false);
    expect(existsSync(r2.path)).toBe(true);
    expect(store.listCheckpoints(job.id).map((c) => [c.step, c.state])).toEqual([[2, 'deleted'], [4, 'ok'], [6, 'ok']]);
    expect(reg.latestGood(job.id)?.step).toBe(6);
    reg.markBad(job.id, 6);
    expect(reg.latestGood(job.id)?.step).toBe(4);
  });

  test('a step saved again (after it was marked bad, or by a later generation) gets its new sha256, size and time', () => {
    let now = 1000;
    const timed = new CheckpointRegistry(store, pino({level: 'silent'}), () => now);
    const r = {...report(5), sha256: 'a'.repeat(64), bytes: 100};
    timed.record(r, root, 9, 0);
    timed.markBad(job.id, 5);
    now = 2000;
    timed.record({...r, sha256: 'b'.repeat(64), bytes: 120}, root, 9, 0);
    expect(store.listCheckpoints(job.id).find((c) => c.step === 5)).toMatchObject({state: 'ok', sha256: 'b'.repeat(64), bytes: 120, createdAtMs: 2000});
    now = 3000; // still ok, saved once more by a rerun of that step
    timed.record({...r, sha256: 'c'.repeat(64), bytes: 130}, root, 9, 0);
    expect(store.listCheckpoints(job.id).find((c) => c.step === 5)).toMatchObject({state: 'ok', sha256: 'c'.repeat(64), bytes: 130, createdAtMs: 3000});
    now = 4000; // the same report again changes nothing
    timed.record({...r, sha256: 'c'.repeat(64), bytes: 130}, root, 9, 0);
    expect(store.listCheckpoints(job.id).find((c) => c.step === 5)!.createdAtMs).toBe(3000);
  });

  test('a failed save records nothing', () => {
    expect(reg.record({...report(8), ok: false, error: 'disk full'}, root, 2, 0)).toBeNull();
    expect(store.listCheckpoints(job.id).some((c) => c.step === 8)).toBe(false);
  });

  test('never deletes outside the job folder', () => {
    const outside = join(dir, 'elsewhere', 'step-000000001');
    mkdirSync(outside, {recursive: true});
    reg.record({jobId: job.id, step: 1, ok: true, path: outside, bytes: 1, sha256: 'c', error: ''}, root, 1, 0);
    expect(existsSync(outside)).toBe(true);
    store.close();
    rmSync(dir, {recursive: true, force: true});
  });
});
