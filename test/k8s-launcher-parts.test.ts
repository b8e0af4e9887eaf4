/** The kubernetes launcher's pure parts: names, pod layout, grace period, loss reasons, worker template errors. */
import {describe, expect, test} from '@jest/globals';
import {mkdtempSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {gracePeriodFor, layoutFor} from '../orchestrator/src/launchers/kubernetes/manifests';
import {podLoss} from '../orchestrator/src/launchers/kubernetes/loss-reason';
import {jobIdLabel, k8sJobName} from '../orchestrator/src/launchers/kubernetes/names';
import {loadWorkerTemplate, parseWorkerTemplate, WorkerTemplateError} from '../orchestrator/src/launchers/kubernetes/worker-template';

const tmpl = (over: Record<string, unknown> = {}) => parseWorkerTemplate({image: 'r.io/w:1.0', ...over});
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

describe('names', () => {
  test('a DNS-safe job id is kept as is', () => {
    expect(k8sJobName('cifar10-r18-7f3a2c')).toBe('byol-cifar10-r18-7f3a2c');
    expect(jobIdLabel('cifar10-r18-7f3a2c')).toBe('cifar10-r18-7f3a2c');
  });
  test('other ids become valid, distinct names that leave room for "-<index>" hostnames', () => {
    const ids = ['My_Job.1', 'my-job-1', 'x'.repeat(80), 'x'.repeat(81), '--weird--'];
    const names = ids.map(k8sJobName);
    expect(new Set(names).size).toBe(ids.length);
    for (const n of names) {
      expect(n).toMatch(DNS_LABEL);
      expect(`${n}-4095`.length).toBeLessThanOrEqual(63);
    }
    for (const id of ids) expect(jobIdLabel(id)).toMatch(/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/);
    expect(jobIdLabel('x'.repeat(80))).not.toBe(jobIdLabel('x'.repeat(81)));
  });
});

describe('layout and grace period', () => {
  test.each([
    // workers, devicesPerPod -> pods, devices per pod (hand-computed: ceil(W/d), ceil(W/pods))
    [4, 8, 1, 4],
    [16, 8, 2, 8],
    [12, 8, 2, 6],
    [10, 8, 2, 5],
    [3, 1, 3, 1],
    [5, 2, 3, 2],
    [0, 4, 1, 1],
  ])('%i workers, %i per pod -> %i pods x %i', (workers, perPod, pods, devices) => {
    expect(layoutFor(workers, tmpl({devicesPerPod: perPod}))).toEqual({pods, devicesPerPod: devices});
  });
  test('grace = job preemption.gracePeriodSeconds (default 30) + margin (default 15)', () => {
    const req = (spec: any) => ({jobId: 'j', workers: 1, coordinatorAddress: 'c:1', spec: {apiVersion: 'byol/v1', kind: 'PretrainJob', metadata: {name: 'j'}, spec}} as any);
    expect(gracePeriodFor(req({}), tmpl())).toBe(45);
    expect(gracePeriodFor(req({preemption: {gracePeriodSeconds: 120}}), tmpl({terminationMarginSeconds: 5}))).toBe(125);
  });
});

describe('podLoss', () => {
  const evicted = {status: {phase: 'Failed', reason: 'Evicted'}};
  const disrupted = {status: {phase: 'Failed', conditions: [{type: 'DisruptionTarget', status: 'True', reason: 'PreemptionByScheduler'}]}};
  test.each([
    ['DELETED', {status: {phase: 'Running'}}, 'deleted'],
    ['DELETED', evicted, 'evicted'],
    ['DELETED', disrupted, 'evicted'],
    ['DELETED', {status: {phase: 'Succeeded'}}, null],
    ['MODIFIED', evicted, 'evicted'],
    ['MODIFIED', disrupted, 'evicted'],
    ['MODIFIED', {status: {phase: 'Failed'}}, 'failed'],
    ['MODIFIED', {status: {phase: 'Failed', conditions: [{type: 'DisruptionTarget', status: 'False'}]}}, 'failed'],
    ['MODIFIED', {status: {phase: 'Running'}, metadata: {deletionTimestamp: '2026-01-01T00:00:00Z'}}, null],
    ['ADDED', {status: {phase: 'Pending'}}, null],
    ['MODIFIED', {status: {phase: 'Succeeded'}}, null],
  ])('%s %j -> %s', (type, pod, want) => {
    expect(podLoss(type, pod)).toBe(want);
  });
});

describe('worker template', () => {
  test('defaults', () => {
    expect(tmpl()).toMatchObject({
      device: 'cuda', devicesPerPod: 1, terminationMarginSeconds: 15, backoffLimit: 1000,
      tokenSecret: {name: 'byol-tokens', key: 'agent-token'}, version: '1.0', imagePullPolicy: 'IfNotPresent',
    });
  });
  test.each([
    [{image: 'r.io/w:1', devicesPerPod: 0}, 'devicesPerPod: must be an integer >= 1'],
    [{image: 'r.io/w:latest'}, 'image: must pin a version tag or digest'],
    [{image: 'registry:5000/w'}, 'image: must pin a version tag or digest'],
    [{image: 'r.io/w:1', gpus: 2}, 'gpus: unknown field'],
    [{device: 'cpu'}, 'image: is required'],
    [{image: 'r.io/w:1', device: 'tpu'}, 'device: must be one of cuda, cpu'],
    [{image: 'r.io/w:1', nodeSelector: {pool: 1}}, 'nodeSelector: every value must be a string'],
    [{image: 'r.io/w:1', tokenSecret: {name: 's'}}, 'tokenSecret: must be a non-empty string'],
    [['image'], 'must be a YAML mapping'],
  ])('%j is refused: %s', (doc, message) => {
    expect(() => parseWorkerTemplate(doc, 'tmpl.yaml')).toThrow(WorkerTemplateError);
    expect(() => parseWorkerTemplate(doc, 'tmpl.yaml')).toThrow(`tmpl.yaml: ${message}`);
  });
  test('digest-pinned images are accepted', () => {
    expect(parseWorkerTemplate({image: 'r.io/w@sha256:' + 'a'.repeat(64)}).image).toContain('@sha256:');
  });
  test('file errors name the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'byol-tmpl-'));
    const bad = join(dir, 'worker-template.yaml');
    writeFileSync(bad, 'image: [unclosed');
    expect(() => loadWorkerTemplate(bad)).toThrow(`${bad}: not valid YAML`);
    expect(() => loadWorkerTemplate(join(dir, 'missing.yaml'))).toThrow(/missing\.yaml: cannot read the worker template/);
  });
});
