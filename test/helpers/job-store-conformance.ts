/**
 * The JobStore contract (domain/store.ts) as one suite that every implementation runs, the way bullmq's
 * tests take a connection factory: `describeJobStore('MyStore', () => home)`. Each test gets a fresh,
 * empty home; `open()` may be called again after `close()` and must find what was written before.
 */
import {afterEach, beforeEach, describe, expect, test} from '@jest/globals';
import {NotFoundError} from '../../orchestrator/src/domain/errors';
import type {JobStore} from '../../orchestrator/src/domain/store';
import type {Job, MetricPoint} from '../../orchestrator/src/domain/types';

/** Where one test's store lives. */
export interface JobStoreHome {
  open(): JobStore;
  /** Removes what the store left behind (its stores are closed by then). */
  dispose(): void;
}

function job(id: string, over: Partial<Job> = {}): Job {
  return {
    id, name: id, priority: 0, state: 'QUEUED',
    spec: {apiVersion: 'byol/v1', kind: 'PretrainJob', metadata: {name: id}, spec: {data: {format: 'synthetic'}}},
    specHash: 'h'.repeat(64),
    schedule: {totalSteps: 10, warmupSteps: 1, peakLr: 1, tauBase: 0.99, tauSchedule: 'cosine', stepsPerEpoch: 5, globalBatch: 8, microBatch: 4, accumulation: 1},
    submittedAtMs: 1000, startedAtMs: null, finishedAtMs: null, step: 0, totalSteps: 10, generation: 0,
    message: null, result: null, ...over,
  };
}

function point(step: number): MetricPoint {
  return {step, generation: 1, loss: 4 - step / 10, tau: 0.99, lr: 0.1, imagesPerSec: 50, stepTimeS: 0.1, dataTimeS: 0.01,
    slowestRank: 0, ranks: 2, epoch: 0, tMs: step};
}

export function describeJobStore(name: string, newHome: () => JobStoreHome): void {
  describe(`${name} conforms to JobStore`, () => {
    let home: JobStoreHome;
    let store: JobStore;
    const reopen = (): JobStore => {
      store.close();
      return (store = home.open());
    };

    beforeEach(() => {
      home = newHome();
      store = home.open();
    });
    afterEach(() => {
      store.close();
      home.dispose();
    });

    test('jobs: insert, get, list newest first, filter by state, limit', () => {
      store.insertJob(job('a', {submittedAtMs: 1}));
      store.insertJob(job('b', {submittedAtMs: 2, state: 'RUNNING', result: {knnTop1: 0.4}}));
      store.insertJob(job('c', {submittedAtMs: 3}));
      expect(store.getJob('b')).toEqual(job('b', {submittedAtMs: 2, state: 'RUNNING', result: {knnTop1: 0.4}}));
      expect(store.getJob('zz')).toBeUndefined();
      expect(store.listJobs().map((j) => j.id)).toEqual(['c', 'b', 'a']);
      expect(store.listJobs({states: ['QUEUED']}).map((j) => j.id)).toEqual(['c', 'a']);
      expect(store.listJobs({limit: 1}).map((j) => j.id)).toEqual(['c']);
      expect(() => store.insertJob(job('a'))).toThrow(); // ids are unique
    });

    test('updateJob patches mutable fields only and rejects unknown ids', () => {
      store.insertJob(job('a'));
      const next = store.updateJob('a', {state: 'RUNNING', step: 5, startedAtMs: 2000, message: 'ok',
        ...({specHash: 'evil', submittedAtMs: 9} as object)});
      expect(next).toMatchObject({state: 'RUNNING', step: 5, startedAtMs: 2000, message: 'ok', specHash: 'h'.repeat(64), submittedAtMs: 1000});
      expect(store.getJob('a')).toEqual(next);
      expect(() => store.updateJob('nope', {step: 1})).toThrow(NotFoundError);
    });

    test('generations upsert by number and list in order', () => {
      store.insertJob(job('a'));
      const g = {generation: 1, worldSize: 2, startStep: 0, endStep: null, endReason: null, stepsLost: 0, recoverySeconds: null,
        startedAtMs: 1, endedAtMs: null, agents: ['x', 'y']};
      store.upsertGeneration('a', {...g, generation: 2});
      store.upsertGeneration('a', g);
      store.upsertGeneration('a', {...g, endStep: 7, endReason: 'worker-lost'});
      expect(store.listGenerations('a')).toEqual([{...g, endStep: 7, endReason: 'worker-lost'}, {...g, generation: 2}]);
    });

    test('checkpoints: add, state changes, ascending, filter', () => {
      store.insertJob(job('a'));
      for (const step of [20, 10, 30]) {
        store.addCheckpoint({jobId: 'a', step, path: `/c/step-${step}`, bytes: step, sha256: 's', state: 'ok', createdAtMs: step});
      }
      store.setCheckpointState('a', 20, 'bad');
      expect(store.listCheckpoints('a').map((c) => [c.step, c.state])).toEqual([[10, 'ok'], [20, 'bad'], [30, 'ok']]);
      expect(store.listCheckpoints('a', {states: ['ok']}).map((c) => c.step)).toEqual([10, 30]);
      expect(() => store.setCheckpointState('a', 99, 'bad')).toThrow(NotFoundError);
    });

    test('metrics keep the newest maxPoints; a re-run step replaces the old point', () => {
      store.insertJob(job('a'));
      store.appendMetrics('a', [1, 2, 3, 4, 5].map(point), 3);
      expect(store.listMetrics('a').map((p) => p.step)).toEqual([3, 4, 5]);
      store.appendMetrics('a', [{...point(4), loss: 9}], 3);
      expect(store.listMetrics('a', {sinceStep: 4})).toEqual([{...point(4), loss: 9}, point(5)]);
      expect(store.listMetrics('a', {limit: 1}).map((p) => p.step)).toEqual([3]);
    });

    test('per-rank values go to their own table: read by step, trimmed with their points', () => {
      store.insertJob(job('a'));
      const perRank = (k: number) => ({stepTimeS: [k, null], dataTimeS: [0.1, null], zStd: [0.2, null]});
      store.appendMetrics('a', [1, 2, 3, 4].map((k) => ({...point(k), perRank: perRank(k)})), 3);
      expect(store.listMetrics('a')).toEqual([2, 3, 4].map(point)); // scalars only
      const got = store.listRankMetrics('a', [1, 3, 4, 9]);
      expect([...got.keys()]).toEqual([3, 4]); // step 1 trimmed, 9 never stored
      expect(got.get(3)).toEqual(perRank(3));
    });

    test('events get increasing seq; listing after a seq replays the rest', () => {
      store.insertJob(job('a'));
      const e1 = store.appendEvent({jobId: 'a', tMs: 1, level: 'info', type: 'submitted', message: 'queued'});
      const e2 = store.appendEvent({jobId: 'a', tMs: 2, level: 'warn', type: 'agent', message: 'lost', data: {agent: 'x'}});
      expect(e2.seq).toBeGreaterThan(e1.seq);
      expect(store.listEvents('a')).toEqual([e1, e2]);
      expect(store.listEvents('a', {afterSeq: e1.seq})).toEqual([e2]);
      expect(store.listEvents('a', {limit: 1})).toEqual([e1]);
      expect(store.listEvents('b')).toEqual([]);
    });

    test('everything persists across close and reopen', () => {
      store.insertJob(job('a'));
      store.updateJob('a', {state: 'SUCCEEDED', result: {knnTop1: 0.5}});
      store.addCheckpoint({jobId: 'a', step: 10, path: '/c', bytes: 1, sha256: 's', state: 'ok', createdAtMs: 1});
      store.appendMetrics('a', [point(1)], 10);
      const ev = store.appendEvent({jobId: 'a', tMs: 1, level: 'info', type: 'state', message: 'done'});
      store = reopen();
      expect(store.getJob('a')).toMatchObject({state: 'SUCCEEDED', result: {knnTop1: 0.5}});
      expect(store.listCheckpoints('a')).toHaveLength(1);
      expect(store.listMetrics('a')).toEqual([point(1)]);
      expect(store.listEvents('a')).toEqual([ev]);
      const next = store.appendEvent({jobId: 'a', tMs: 2, level: 'info', type: 'state', message: 'again'});
      expect(next.seq).toBeGreaterThan(ev.seq);
    });
  });
}
