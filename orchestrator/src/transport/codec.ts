/**
 * The one place protobuf meets domain data: encode/decode of the Connect stream's messages and of
 * the trainers' telemetry frames.
 * Uses the protobufjs static module generated from proto/ (numbers, not Longs: --force-number).
 */
import {byol} from '../gen/proto';
import type {
  AgentMsg, CoordinatorMsg, DeviceInfo, HelloMsg, TrainerStateName,
} from '../agents/agent-messages';
import type {RankMetric} from '../telemetry/aggregator';

const pb = byol.v1;

const TRAINER_STATES: Record<number, TrainerStateName> = {
  0: 'UNSPECIFIED', 1: 'STARTING', 2: 'RUNNING', 3: 'SUCCEEDED', 4: 'PREEMPTED', 5: 'FAILED', 6: 'ABORTED',
};
const COMMANDS = {CHECKPOINT_NOW: 1, STOP_AT_STEP: 2, ABORT: 3} as const;

const num = (v: unknown): number => (v === undefined || v === null ? 0 : Number(v));
const str = (v: unknown): string => (v === undefined || v === null ? '' : String(v));

export function decodeAgentMessage(buf: Buffer): AgentMsg {
  const m = pb.AgentMessage.decode(buf);
  if (m.hello) {
    const h = m.hello;
    const hello: HelloMsg = {
      agentId: str(h.agentId),
      host: str(h.host),
      devices: (h.devices ?? []).map((d): DeviceInfo => ({
        id: str(d.id), kind: str(d.kind), name: str(d.name), memoryBytes: num(d.memoryBytes),
      })),
      versions: {...(h.versions ?? {})},
      running: (h.running ?? []).map((r) => ({
        jobId: str(r.jobId), generation: num(r.generation), rank: num(r.rank),
        deviceId: str(r.deviceId), step: num(r.step),
      })),
      sessionKey: str(h.sessionKey),
    };
    return {kind: 'hello', hello};
  }
  if (m.heartbeat) return {kind: 'heartbeat', sentUnixMs: num(m.heartbeat.sentUnixMs)};
  if (m.trainer) {
    const t = m.trainer;
    return {kind: 'trainer', trainer: {
      jobId: str(t.jobId), generation: num(t.generation), rank: num(t.rank),
      state: TRAINER_STATES[num(t.state)] ?? 'UNSPECIFIED', exitCode: num(t.exitCode),
      message: str(t.message), step: num(t.step),
    }};
  }
  if (m.progress) {
    const p = m.progress;
    return {kind: 'progress', progress: {
      jobId: str(p.jobId), generation: num(p.generation), rank: num(p.rank), step: num(p.step), epoch: num(p.epoch),
      results: p.results && Object.keys(p.results).length ? {...p.results} : undefined,
    }};
  }
  if (m.checkpoint) {
    const c = m.checkpoint;
    return {kind: 'checkpoint', checkpoint: {
      jobId: str(c.jobId), generation: num(c.generation), step: num(c.step), ok: Boolean(c.ok),
      path: str(c.path), bytes: num(c.bytes), sha256: str(c.sha256), error: str(c.error),
    }};
  }
  if (m.rendezvous) {
    const r = m.rendezvous;
    return {kind: 'rendezvous', rendezvous: {jobId: str(r.jobId), generation: num(r.generation), address: str(r.address)}};
  }
  if (m.event) {
    const e = m.event;
    return {kind: 'event', event: {
      jobId: str(e.jobId), generation: num(e.generation), level: str(e.level), message: str(e.message),
      draining: Boolean(e.draining),
    }};
  }
  throw new Error('AgentMessage has no kind set');
}

export function encodeCoordinatorMessage(msg: CoordinatorMsg): Buffer {
  let m: byol.v1.CoordinatorMessage.$Properties;
  if (msg.kind === 'welcome') {
    m = {welcome: {agentId: msg.agentId, heartbeatIntervalMs: msg.heartbeatIntervalMs, telemetryAddress: msg.telemetryAddress,
      sessionKey: msg.sessionKey ?? ''}};
  } else if (msg.kind === 'assign') {
    const a = msg.assign;
    const s = a.schedule;
    m = {assign: {
      jobId: a.jobId, generation: a.generation, rank: a.rank, worldSize: a.worldSize, deviceId: a.deviceId,
      hostRendezvous: a.hostRendezvous, rendezvousAddress: a.rendezvousAddress, specJson: a.specJson, specHash: a.specHash,
      schedule: {
        totalSteps: s.totalSteps, warmupSteps: s.warmupSteps, peakLr: s.peakLr, tauBase: s.tauBase,
        tauSchedule: s.tauSchedule, stepsPerEpoch: s.stepsPerEpoch, globalBatch: s.globalBatch, microBatch: s.microBatch,
        accumulation: s.accumulation,
      },
      resumeCheckpoint: a.resumeCheckpoint, checkpointDir: a.checkpointDir,
      telemetryAddress: a.telemetryAddress, stopAtStep: a.stopAtStep, telemetryKey: a.telemetryKey,
    }};
  } else {
    m = {command: {jobId: msg.jobId, generation: msg.generation, type: COMMANDS[msg.command], step: msg.step}};
  }
  return Buffer.from(pb.CoordinatorMessage.encode(m).finish());
}

/** For test agents written in TypeScript: the reverse direction. */
export function encodeAgentMessage(m: byol.v1.AgentMessage.$Properties): Buffer {
  return Buffer.from(pb.AgentMessage.encode(m).finish());
}
export function decodeCoordinatorMessage(buf: Buffer): byol.v1.CoordinatorMessage {
  return pb.CoordinatorMessage.decode(buf);
}

/** A trainer's telemetry frame (byol.v1.Metric) as the aggregator's record; throws when the frame is malformed. */
export function decodeMetric(frame: Uint8Array): RankMetric {
  const m = pb.Metric.decode(frame);
  // uint64 fields decode as Long when the `long` package is present: make them numbers here.
  return {
    jobId: m.jobId, generation: Number(m.generation), rank: m.rank, worldSize: m.worldSize, step: Number(m.step),
    loss: m.loss, tau: m.tau, lr: m.lr, stepTimeS: m.stepTimeS, dataTimeS: m.dataTimeS,
    imagesPerSec: m.imagesPerSec, epoch: m.epoch, dropped: Number(m.dropped), extra: m.extra,
    syncWaitS: m.syncWaitMs / 1000, // proto3: 0 in frames of trainers that predate the field
  };
}
