/**
 * The dashboard in a real browser (headless Chromium via playwright-core) against a real coordinator,
 * real Python agents and gloo trainers: the token prompt, live plot points while a job runs, a SIGTERM
 * preemption in the generations timeline, and a collapsing job (spec.health.onCollapse: stop) raising
 * the alarm on the page, as a job event, a Prometheus metric and a FAILED job with the reason.
 * Screenshots go to BYOL_SCREENSHOT_DIR (default: a temp folder, removed).
 */
import {afterAll, beforeAll, expect, test} from '@jest/globals';
import {mkdirSync} from 'node:fs';
import {join} from 'node:path';
import pino from 'pino';
import type {Page} from 'playwright-core';
import {startApiServer, type ApiServer} from '../orchestrator/src/api';
import {healthWarnings} from '../orchestrator/src/cli/health-lines';
import type {CliIo} from '../orchestrator/src/cli/io';
import {runCli} from '../orchestrator/src/cli/parser';
import {launchBrowser} from './helpers/browser';
import {explain, waitForState, waitForStep} from './helpers/job-checks';
import {killAllAgents, spawnPythonAgent, type PythonAgent} from './helpers/python-agent';
import {tempDir} from './helpers/temp';
import {startTestCoordinator, tinySpec, TEST_TOKEN, type TestCoordinator} from './helpers/test-coordinator';

const API_TOKEN = 'dashboard-test-token';
let coord: TestCoordinator;
let rest: ApiServer;
let browser: Awaited<ReturnType<typeof launchBrowser>>;
let page: Page;
let agents: PythonAgent[];
const shots = process.env.BYOL_SCREENSHOT_DIR ? {path: process.env.BYOL_SCREENSHOT_DIR, cleanup: () => undefined} : tempDir('byol-shots-');

beforeAll(async () => {
  mkdirSync(shots.path, {recursive: true});
  coord = await startTestCoordinator();
  rest = await startApiServer({api: coord.api, logger: pino({level: 'silent'}), host: '127.0.0.1', port: 0, registry: coord.registry, token: API_TOKEN});
  agents = [0, 1].map((i) => spawnPythonAgent(coord.grpcAddress, `dash-${i}`, TEST_TOKEN));
  browser = await launchBrowser();
  page = await browser.context.newPage();
  page.on('request', (r) => requested.push(r.url()));
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await killAllAgents();
  await rest?.close();
  await coord?.cleanup();
  shots.cleanup();
});

/** A REST call with the token, as any client of a server with --api-token. */
const authed = (path: string) => fetch(`${rest.url}${path}`, {headers: {authorization: `Bearer ${API_TOKEN}`}});
/** Every URL the page asked for: all must be this server's (no CDN, no other network). */
const requested: string[] = [];
/** `byolctl status ID` against the REST server, as a user runs it; stderr carries the health warnings. */
async function status(id: string): Promise<{code: number; out: string; err: string}> {
  let out = '';
  let err = '';
  const io: CliIo = {out: (t) => void (out += t), err: (t) => void (err += t), isTTY: false};
  const code = await runCli(['status', id, '--server', rest.url, '--token', API_TOKEN], {io, signal: new AbortController().signal});
  process.exitCode = undefined;
  return {code, out, err};
}
const points = async (sel: string) => Number(await page.getAttribute(`${sel}`, 'data-points'));

test('the page asks for the token, then shows a job live; a SIGTERM preemption lands in the timeline', async () => {
  const spec = tinySpec({name: 'dash-live', workers: 2, minWorkers: 1, numSamples: 160, epochs: 2, everySteps: 5}) as any;
  spec.spec.eval = {knn: {enabled: true, everyEpochs: 1, k: 5, temperature: 0.1}}; // a kNN point per epoch
  const job = coord.api.submit(spec);
  expect(job.totalSteps).toBe(40);
  await waitForStep(coord, job.id, 2, agents);

  const first = await page.goto(`${rest.url}/#/job/${job.id}`);
  expect(first!.headers()['content-security-policy']).toMatch(/default-src 'self'/);
  await page.waitForSelector('#token-form:not([hidden])');
  await page.fill('#token-input', 'wrong');
  await page.click('#token-form button');
  await page.waitForSelector('#token-error:has-text("refused")');
  await page.fill('#token-input', API_TOKEN);
  await page.click('#token-form button');
  await page.waitForSelector('#p-loss[data-points]');

  // Live: the loss plot gains points while the job is still running.
  const before = await points('#p-loss');
  await page.waitForFunction((n) => Number(document.querySelector('#p-loss')!.getAttribute('data-points')) > n + 2, before, {timeout: 120_000});
  expect(coord.api.getJob(job.id)!.state).toBe('RUNNING');
  expect(await points('#p-z')).toBeGreaterThan(0);
  expect(await page.locator('#p-step .u-legend').innerText()).toContain('rank 1');

  await waitForStep(coord, job.id, 12, agents);
  agents[1].child.kill('SIGTERM');
  await waitForState(coord, job.id, 'SUCCEEDED', agents);
  await page.waitForSelector('#gens tr[data-reason="preempted"]', {timeout: 30_000});
  await page.waitForSelector('#gens tr[data-reason="completed"]', {timeout: 30_000});
  await page.waitForSelector('#stats :text("SUCCEEDED")', {timeout: 30_000});
  await page.waitForFunction(() => Number(document.querySelector('#p-loss')!.getAttribute('data-points')) >= 40, undefined, {timeout: 30_000});
  expect(await page.locator('#ckpts tr[data-step]').count()).toBeGreaterThan(0);
  await page.waitForFunction(() => Number(document.querySelector('#p-knn')!.getAttribute('data-points')) >= 2, undefined, {timeout: 30_000});
  expect(await page.locator('#events [data-type="generation"]').count()).toBeGreaterThanOrEqual(2);
  // Every plot of the job page holds points; the timeline has steps lost and the recovery time; the
  // checkpoints their size, state and sha256; the resolved spec and the plan are shown.
  for (const sel of ['#p-sched', '#p-imgs', '#p-step', '#p-data', '#p-z']) expect(await points(sel)).toBeGreaterThan(0);
  const resumed = page.locator('#gens tr[data-reason="completed"] td');
  expect(await resumed.nth(6).innerText()).toMatch(/^\d+$/);
  expect(await resumed.nth(7).innerText()).toMatch(/^\d+\.\d s$/);
  const ckpt = await page.locator('#ckpts tr[data-step]').last().innerText();
  const sha = (await (await authed(`/v1/jobs/${job.id}/checkpoints`)).json() as {sha256: string}[]).at(-1)!.sha256;
  expect(ckpt).toMatch(new RegExp(`MiB\\s+ok\\s+${sha.slice(0, 16)}`));
  const specText = await page.locator('#spec').innerText();
  expect(specText).toContain('"name": "dash-live"');
  expect(specText).toContain('"totalSteps": 40');
  await page.screenshot({path: join(shots.path, 'job-preempted.png'), fullPage: true});

  await page.goto(`${rest.url}/#/`);
  await page.waitForSelector(`tr[data-job="${job.id}"] :text("SUCCEEDED")`);
  expect(await page.locator(`tr[data-job="${job.id}"]`).innerText()).toMatch(/SUCCEEDED\s+40\/40\s+\d+\.\d{4}\s+[\d.]+\s+\S+\s+2\s+\d+/);
  await page.goto(`${rest.url}/#/workers`);
  await page.waitForSelector('tr[data-agent="dash-0"]');
  const worker = await page.locator('tr[data-agent="dash-0"]').innerText();
  const [w0] = (await (await authed('/v1/workers')).json() as {agentId: string; versions: Record<string, string>}[]).filter((w) => w.agentId === 'dash-0');
  expect(Object.keys(w0.versions).length).toBeGreaterThan(0);
  for (const [k, v] of Object.entries(w0.versions)) expect(worker).toContain(`${k} ${v}`);
  expect(worker).toMatch(/cpu:0[\s\S]*\d+\.\d s ago/);
  await page.screenshot({path: join(shots.path, 'workers.png')});
}, 400_000);

test('a collapsing job raises the alarm on the page and, with onCollapse: stop, ends FAILED', async () => {
  // Measured (README, Dashboard): SGD lr 0.5 with weight decay 1.0 on every parameter, no momentum, drives
  // z_std from ~0.2 to 0 by step 8 on this tiny model; the alarm needs 10 steps below the threshold.
  const spec = tinySpec({name: 'dash-collapse', workers: 1, numSamples: 160, epochs: 2, everySteps: 100}) as any;
  spec.spec.optimizer = {name: 'sgd', baseLr: 0.5, lrScaling: 'none', weightDecay: 1.0, momentum: 0, excludeBiasAndNorm: false, warmupEpochs: 0};
  spec.spec.health = {onCollapse: 'stop'};
  const job = coord.api.submit(spec);
  await page.goto(`${rest.url}/#/job/${job.id}`);
  await page.waitForSelector('#p-loss[data-points]');
  await waitForState(coord, job.id, 'FAILED', agents, 240_000);
  const view = coord.api.getJob(job.id)!;
  expect(view.message).toMatch(/onCollapse=stop: representation collapse/);
  expect(view.step).toBeLessThan(view.totalSteps);
  expect(view.generations[view.generations.length - 1].endReason).toBe('collapse');
  expect(coord.api.events(job.id).some((e) => e.type === 'health' && e.level === 'warn' && e.data?.alarm === 'collapse')).toBe(true);
  expect(healthWarnings(view)).toMatch(/warning: .* collapse since step \d+/);
  const st = await status(job.id);
  expect(st.code).toBe(0);
  expect(st.err).toMatch(new RegExp(`warning: ${job.id}: collapse since step \\d+: representation collapse`));
  expect(await (await authed('/metrics')).text()).toMatch(new RegExp(`byol_job_health_alarm\\{job="${job.id}",alarm="collapse"\\} 1`));

  await page.waitForSelector('#health .alarm[data-alarm="collapse"]', {timeout: 30_000});
  await page.waitForSelector('#stats :text("FAILED")', {timeout: 30_000});
  await page.waitForSelector('#events [data-type="health"]');
  await page.screenshot({path: join(shots.path, 'job-collapsed.png'), fullPage: true});
}, 400_000);

test('data routes need the token, the page files do not; a bad width is refused, naming the parameter', async () => {
  const [job] = coord.api.listJobs();
  expect((await fetch(`${rest.url}/ui/api/jobs/${job.id}/series`)).status).toBe(401); // data needs the token
  expect((await fetch(`${rest.url}/ui/app.js`)).status).toBe(200); // the page's own files do not
  const r = await authed(`/ui/api/jobs/${job.id}/series?width=abc`);
  expect(r.status).toBe(400);
  expect((await r.json()).error).toMatch(/width/);
  const origin = new URL(rest.url).origin;
  expect(requested.length).toBeGreaterThan(0);
  expect(requested.filter((u) => new URL(u).origin !== origin)).toEqual([]); // no CDN, nothing off this server
  void explain;
});
