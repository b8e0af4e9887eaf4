import {describe, expect, test} from '@jest/globals';
import {eligibleDevices, placeGangs, queueOrder, worldSizeFor, type Device, type PendingJob} from '../orchestrator/src/placement/gang-placement';

const job = (id: string, over: Partial<PendingJob> = {}): PendingJob => ({
  id, priority: 0, submittedAtMs: 0, workers: 2, minWorkers: 2, resuming: false, globalBatch: 256, ...over,
});
const dev = (agentId: string, deviceId = 'cpu:0', ownerJobId?: string): Device => (ownerJobId ? {agentId, deviceId, ownerJobId} : {agentId, deviceId});

describe('queueOrder', () => {
  test('priority descending, then submit time ascending', () => {
    const q = queueOrder([job('a', {submittedAtMs: 1}), job('b', {priority: 5, submittedAtMs: 3}), job('c', {submittedAtMs: 0}), job('d', {priority: 5, submittedAtMs: 2})]);
    expect(q.map((j) => j.id)).toEqual(['d', 'b', 'c', 'a']);
  });
});

describe('worldSizeFor', () => {
  test('a fresh start needs all its ranks', () => {
    expect(worldSizeFor(job('a', {workers: 4}), 3)).toBeNull();
    expect(worldSizeFor(job('a', {workers: 4}), 5)).toBe(4);
  });
  test('after a loss: largest W in [minWorkers, workers] that divides B', () => {
    const j = job('a', {workers: 4, minWorkers: 1, resuming: true, globalBatch: 12});
    expect(worldSizeFor(j, 4)).toBe(4);
    expect(worldSizeFor(j, 3)).toBe(3);
    expect(worldSizeFor({...j, globalBatch: 8}, 3)).toBe(2); // 3 does not divide 8
    expect(worldSizeFor(j, 0)).toBeNull();
    expect(worldSizeFor({...j, minWorkers: 3}, 2)).toBeNull();
  });
});

describe('placeGangs (gang placement)', () => {
  test('all ranks or nothing', () => {
    expect(placeGangs([job('a', {workers: 3})], [dev('x'), dev('y')])).toEqual([]);
    const p = placeGangs([job('a')], [dev('y'), dev('x'), dev('z')]);
    expect(p).toEqual([{jobId: 'a', devices: [dev('x'), dev('y')]}]);
  });
  test('higher priority goes first; the second job waits for devices', () => {
    const p = placeGangs([job('low', {submittedAtMs: 0}), job('high', {priority: 10, submittedAtMs: 5})], [dev('x'), dev('y')]);
    expect(p.map((x) => x.jobId)).toEqual(['high']);
  });
  test('no backfill past a job that cannot start', () => {
    const p = placeGangs([job('big', {workers: 3, priority: 1}), job('small', {workers: 1})], [dev('x'), dev('y')]);
    expect(p).toEqual([]);
  });
  test('devices owned by a job go only to it, and stay usable when shared ones are blocked', () => {
    const free = [dev('local-b-0', 'cpu:0', 'b'), dev('local-b-1', 'cpu:0', 'b'), dev('s')];
    expect(eligibleDevices('a', free)).toEqual([dev('s')]);
    const p = placeGangs([job('a', {priority: 1}), job('b')], free);
    expect(p).toEqual([{jobId: 'b', devices: [free[0], free[1]]}]);
  });
  test('two jobs fit side by side', () => {
    const p = placeGangs([job('a', {workers: 1}), job('b', {workers: 1, submittedAtMs: 1})], [dev('x'), dev('y')]);
    expect(p).toEqual([{jobId: 'a', devices: [dev('x')]}, {jobId: 'b', devices: [dev('y')]}]);
  });
});
