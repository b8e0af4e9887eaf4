/**
 * The rank-skew alarm with real ranks: a 2-rank gloo job where one trainer becomes a compute straggler for real
 * (SIGSTOP/SIGCONT at 2/3 duty). Ranks train in lockstep, so both report about the same step time; the alarm
 * must still name the slowed rank, from each rank's own time (step time less its measured wait for the other),
 * and must not be raised before the slowing starts.
 */
import {afterEach, expect, test} from '@jest/globals';
import {explain, trainerPids, waitForStep} from './helpers/job-checks';
import {killAllAgents, spawnPythonAgent} from './helpers/python-agent';
import {startTestCoordinator, tinySpec, TEST_TOKEN, type TestCoordinator} from './helpers/test-coordinator';
import {waitFor} from './helpers/wait';

let coord: TestCoordinator | null = null;
let slowing: {pid: number; on: boolean} | null = null;
afterEach(async () => {
  if (slowing) {
    slowing.on = false;
    process.kill(slowing.pid, 'SIGCONT');
  }
  await killAllAgents();
  await coord?.cleanup();
  coord = null;
});

/** Per-rank values of the job's last `n` stored steps. */
function ranksOf(c: TestCoordinator, jobId: string, n: number) {
  return c.api.rankMetrics(jobId, c.api.metrics(jobId).slice(-n).map((p) => p.step));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Stops the process 200 ms, lets it run 100 ms, until `s.on` is false; leaves it running. */
async function dutyCycle(s: {pid: number; on: boolean}): Promise<void> {
  while (s.on) {
    process.kill(s.pid, 'SIGSTOP');
    await sleep(200);
    process.kill(s.pid, 'SIGCONT');
    await sleep(100);
  }
}

test('a compute straggler in lockstep raises rank-skew naming it; an even job does not', async () => {
  coord = await startTestCoordinator();
  const c = coord;
  const agents = [0, 1].map((i) => spawnPythonAgent(c.grpcAddress, `skew-${i}`, TEST_TOKEN));
  const spec = tinySpec({name: 'skew', workers: 2, numSamples: 320, epochs: 20, everySteps: 10_000}) as any;
  spec.spec.health = {skewThreshold: 1.3, stallSeconds: 120};
  const job = c.api.submit(spec);
  const skewEvents = () => c.api.events(job.id).filter((e) => e.type === 'health' && e.data?.alarm === 'rank-skew');

  // Even: a full 20-step window and more, no alarm (the window's first judgement is at step 20).
  await waitForStep(c, job.id, 45, agents, 180_000);
  expect(skewEvents()).toEqual([]);
  const even = c.api.getJob(job.id)!.health!;
  expect(even.rankSkew).not.toBeNull();
  expect(even.rankSkew!).toBeLessThan(1.3);
  const before = [...ranksOf(c, job.id, 20).values()];
  const waited = before.some((r) => (r.syncWaitS ?? []).some((w) => w !== null && w > 0));
  expect(waited).toBe(true); // the ranks measure their sync wait and the coordinator keeps it

  const [pid] = trainerPids(agents[1]);
  const s = {pid, on: true};
  slowing = s;
  const cycling = dutyCycle(s);
  const raised = await waitFor('the rank-skew alarm', () => skewEvents().find((e) => !e.data?.cleared), 120_000, 100)
    .catch((err) => { throw new Error(`${err.message}\nhealth: ${JSON.stringify(c.api.getJob(job.id)!.health)}\n${explain(c, job.id, agents)}`); });
  const during = c.api.getJob(job.id)!.health!;
  s.on = false;
  await cycling;
  slowing = null;
  expect(raised.level).toBe('warn');
  expect(raised.message).toMatch(/^rank 1 is \d+\.\d\dx slower than the median rank/);
  expect(during.slowestRank).toBe(1);
  // Step times alone stay even (lockstep): the alarm comes from the own times.
  const slowPts = [...ranksOf(c, job.id, 10).values()].filter((r) => r.stepTimeS.every((t) => t !== null));
  const mean = (r: number) => slowPts.reduce((a, p) => a + p.stepTimeS[r]!, 0) / slowPts.length;
  console.log(`rank-skew: even job ${even.rankSkew!.toFixed(2)}, slowed ${during.rankSkew!.toFixed(2)}; ` +
    `step time over the last 10 steps rank 0 ${mean(0).toFixed(3)} s, rank 1 ${mean(1).toFixed(3)} s`);
  expect(Math.max(mean(0), mean(1)) / Math.min(mean(0), mean(1))).toBeLessThan(1.3);
  c.api.cancel(job.id);
}, 420_000);
