/**
 * The stalled-ranks alarm with real ranks: SIGSTOP one gloo trainer of a 2-rank job (its peer then waits in
 * the collective), the alarm is raised as a job event and in the job's health; SIGCONT clears it.
 */
import {afterEach, expect, test} from '@jest/globals';
import {explain, trainerPids, waitForStep} from './helpers/job-checks';
import {killAllAgents, spawnPythonAgent} from './helpers/python-agent';
import {startTestCoordinator, tinySpec, TEST_TOKEN, type TestCoordinator} from './helpers/test-coordinator';
import {waitFor} from './helpers/wait';

let coord: TestCoordinator | null = null;
let stopped = 0;
afterEach(async () => {
  if (stopped) process.kill(stopped, 'SIGCONT');
  await killAllAgents();
  await coord?.cleanup();
  coord = null;
});

test('a stopped trainer raises stalled-ranks after stallSeconds; it clears when the rank goes on', async () => {
  coord = await startTestCoordinator();
  const c = coord;
  const agents = [0, 1].map((i) => spawnPythonAgent(c.grpcAddress, `stall-${i}`, TEST_TOKEN));
  const spec = tinySpec({name: 'stall', workers: 2, numSamples: 320, epochs: 2, everySteps: 100}) as any;
  spec.spec.health = {stallSeconds: 3};
  const job = c.api.submit(spec);
  await waitForStep(c, job.id, 3, agents);
  const health = (kind: string, cleared: boolean) => c.api.events(job.id).find((e) => e.type === 'health' && e.data?.alarm === kind && Boolean(e.data?.cleared) === cleared);
  expect(health('stalled-ranks', false)).toBeUndefined();

  [stopped] = trainerPids(agents[1]);
  process.kill(stopped, 'SIGSTOP');
  const raised = await waitFor('the stalled-ranks alarm', () => health('stalled-ranks', false), 60_000, 100)
    .catch((err) => { throw new Error(`${err.message}\n${explain(c, job.id, agents)}`); });
  expect(raised.level).toBe('warn');
  expect(raised.message).toMatch(/rank\(s\) (0, )?1 sent no step for over 3 s/);
  expect(c.api.getJob(job.id)!.health!.stalledRanks).toContain(1);

  process.kill(stopped, 'SIGCONT');
  stopped = 0;
  await waitFor('the alarm to clear', () => health('stalled-ranks', true), 60_000, 100);
  expect(c.api.getJob(job.id)!.health!.stalledRanks).toEqual([]);
  c.api.cancel(job.id);
}, 240_000);
