/** A real coordinator on ephemeral loopback ports with a temp store and checkpoint root. */
import {join} from 'node:path';
import pino from 'pino';
import {startCoordinator, type CoordinatorOptions, type RunningCoordinator} from '../../orchestrator/src/coordinator/start';
import {tempDir} from './temp';

export const TEST_TOKEN = 'test-token-0123456789';

export interface TestCoordinator extends RunningCoordinator {
  dir: string;
  storePath: string;
  checkpointRoot: string;
  cleanup(): Promise<void>;
}

export async function startTestCoordinator(over: Partial<CoordinatorOptions> = {}, dir?: string): Promise<TestCoordinator> {
  const tmp = dir ? {path: dir, cleanup: () => undefined} : tempDir('byol-coord-');
  const storePath = join(tmp.path, 'store.db');
  const checkpointRoot = join(tmp.path, 'checkpoints');
  const c = await startCoordinator({
    storePath, checkpointRoot, agentToken: TEST_TOKEN, launcher: 'external', grpcHost: '127.0.0.1',
    grpcPort: 0, telemetryPort: 0, heartbeatIntervalMs: 200, heartbeatTimeoutMs: 2000,
    logger: pino({level: process.env.BYOL_TEST_LOG_LEVEL ?? 'silent'}), ...over,
  });
  return {
    ...c, dir: tmp.path, storePath, checkpointRoot,
    async cleanup() {
      await c.close();
      tmp.cleanup();
    },
  };
}

/** A tiny synthetic job: 16-px images, ResNet-18 CIFAR at width 0.125, tiny heads, a few steps. */
export function tinySpec(over: {name?: string; workers?: number; minWorkers?: number; priority?: number; epochs?: number;
  numSamples?: number; globalBatch?: number; everySteps?: number; keepLast?: number} = {}): Record<string, unknown> {
  return {
    apiVersion: 'byol/v1',
    kind: 'PretrainJob',
    metadata: {name: over.name ?? 'tiny', priority: over.priority ?? 0},
    spec: {
      preset: 'byol-cifar',
      data: {format: 'synthetic', numSamples: over.numSamples ?? 32, numClasses: 4, imageSize: 16, loaderWorkers: 0},
      model: {backbone: 'resnet18-cifar', width: 0.125, projector: {hiddenDim: 32, outDim: 16}, predictor: {hiddenDim: 32}},
      optimizer: {warmupEpochs: 1},
      train: {epochs: over.epochs ?? 1, globalBatch: over.globalBatch ?? 8, precision: 'fp32', channelsLast: false, logEverySteps: 1},
      resources: {workers: over.workers ?? 2, minWorkers: over.minWorkers ?? over.workers ?? 2, device: 'cpu', threadsPerWorker: 1},
      checkpoint: {everySteps: over.everySteps ?? 2, keepLast: over.keepLast ?? 3},
      eval: {knn: {enabled: false}},
      preemption: {gracePeriodSeconds: 20},
    },
  };
}
