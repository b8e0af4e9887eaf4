/**
 * End to end: a real coordinator, real Python agents, real gloo trainers on a tiny synthetic job.
 * Checks the job's life, the metrics that arrive over ZeroMQ, and the LR/tau schedule they carry.
 */
import {afterEach, describe, expect, test} from '@jest/globals';
import {lrAt, tauAt} from '../orchestrator/src/schedules';
import {trainerPids, waitForState, waitForStep} from './helpers/job-checks';
import {killAllAgents, spawnPythonAgent} from './helpers/python-agent';
import {startTestCoordinator, tinySpec, TEST_TOKEN, type TestCoordinator} from './helpers/test-coordinator';
import {waitFor} from './helpers/wait';

let coord: TestCoordinator | null = null;
afterEach(async () => {
  await killAllAgents();
  await coord?.cleanup();
  coord = null;
});

describe('e2e with Python agents', () => {
  test('an agent without the token is refused and exits', async () => {
    coord = await startTestCoordinator();
    const a = spawnPythonAgent(coord.grpcAddress, 'no-token', 'wrong');
    const {code} = await a.exited;
    expect(code).toBe(3);
    expect(coord.api.workers()).toEqual([]);
  }, 240_000);

  test('a 2-rank job goes QUEUED -> RUNNING -> SUCCEEDED with its metrics in the store', async () => {
    coord = await startTestCoordinator();
    const c = coord;
    const agents = [0, 1].map((i) => spawnPythonAgent(c.grpcAddress, `py-${i}`, TEST_TOKEN));
    const job = c.api.submit(tinySpec({workers: 2, everySteps: 2}));
    expect(job.state).toBe('QUEUED');
    const states = new Set<string>();
    c.api.subscribe(job.id, (ev) => { if (ev.type === 'state') states.add(String(ev.data?.to)); });
    try {
      await waitFor('SUCCEEDED', () => {
        const s = c.api.getJob(job.id)!.state;
        if (s === 'FAILED') throw new Error(c.api.getJob(job.id)!.message ?? 'failed');
        return s === 'SUCCEEDED';
      }, 150_000, 200);
    } catch (err) {
      throw new Error(`${(err as Error).message}\nevents:\n${c.api.events(job.id).map((e) => e.message).join('\n')}\nagent 0:\n${agents[0].output().slice(-3000)}`);
    }
    expect([...states]).toEqual(expect.arrayContaining(['SCHEDULED', 'RUNNING', 'SUCCEEDED']));
    const view = c.api.getJob(job.id)!;
    const K = view.totalSteps;
    expect(view.step).toBe(K);
    await waitFor('all metric points', () => c.api.metrics(job.id).length === K, 5000);
    const pts = c.api.metrics(job.id);
    const s = view.schedule;
    pts.forEach((p, k) => {
      expect(p.step).toBe(k);
      expect(p.ranks).toBe(2);
      expect(Number.isFinite(p.loss)).toBe(true);
      expect(p.lr).toBeCloseTo(lrAt(k, K, s.warmupSteps, s.peakLr), 9);
      expect(p.tau).toBeCloseTo(tauAt(k, K, s.tauBase, s.tauSchedule), 9);
    });
    const ok = c.api.checkpoints(job.id).filter((x) => x.state === 'ok');
    expect(ok.length).toBeGreaterThan(0);
    expect(ok[ok.length - 1].step).toBe(K);
    expect(c.api.workers().every((w) => Object.keys(w.assigned).length === 0)).toBe(true);
  }, 240_000);

  test('the local launcher starts one agent per rank for a job and stops them when it ends', async () => {
    coord = await startTestCoordinator({launcher: 'local'});
    const c = coord;
    const job = c.api.submit(tinySpec({workers: 1}));
    await waitFor('local agent joined', () => c.api.workers().some((w) => w.agentId === `local-${job.id}-0`), 30_000, 100);
    await waitFor('SUCCEEDED', () => {
      const j = c.api.getJob(job.id)!;
      if (j.state === 'FAILED') throw new Error(j.message ?? 'failed');
      return j.state === 'SUCCEEDED';
    }, 120_000, 200);
    expect(c.api.getJob(job.id)!.generations).toMatchObject([{agents: [`local-${job.id}-0`], endReason: 'completed'}]);
    // Released with the job: the agent exits and its stream closes.
    await waitFor('local agent gone', () => c.api.workers().length === 0, 30_000, 100);
  }, 240_000);

  test('cancel kills the trainers and frees the devices for the next job', async () => {
    coord = await startTestCoordinator();
    const c = coord;
    const agents = [0, 1].map((i) => spawnPythonAgent(c.grpcAddress, `py-${i}`, TEST_TOKEN));
    const job = c.api.submit(tinySpec({workers: 2, numSamples: 400, epochs: 1}));
    await waitForStep(c, job.id, 1, agents);
    expect(agents.map((a) => trainerPids(a).length)).toEqual([1, 1]);
    expect(c.api.cancel(job.id).state).toBe('CANCELLED');
    await waitFor('trainers gone', () => agents.every((a) => trainerPids(a).length === 0), 20_000, 100);
    const next = c.api.submit(tinySpec({name: 'next', workers: 2}));
    await waitForState(c, next.id, 'SUCCEEDED', agents);
    expect(c.api.getJob(job.id)!.generations).toMatchObject([{endReason: 'cancelled'}]);
  }, 240_000);
});
