/**
 * Plain-data forms of the agent <-> coordinator wire messages (proto/byol/v1/agent.proto).
 * transport/codec.ts converts to and from protobuf; nothing else sees protobuf types.
 */
import type {ScheduleState} from '../domain/types';

export type TrainerStateName =
  | 'UNSPECIFIED' | 'STARTING' | 'RUNNING' | 'SUCCEEDED' | 'PREEMPTED' | 'FAILED' | 'ABORTED';

export interface DeviceInfo {id: string; kind: string; name: string; memoryBytes: number}

export interface RunningTrainerInfo {jobId: string; generation: number; rank: number; deviceId: string; step: number}

export interface HelloMsg {
  agentId: string;
  host: string;
  devices: DeviceInfo[];
  versions: Record<string, string>;
  running: RunningTrainerInfo[];
  /** The key a previous Welcome issued for this agent id ('' on a first registration). */
  sessionKey?: string;
}

export interface TrainerStatusMsg {
  jobId: string; generation: number; rank: number; state: TrainerStateName;
  exitCode: number; message: string; step: number;
}
export interface ProgressMsg {
  jobId: string; generation: number; rank: number; step: number; epoch: number;
  /** End-of-run evaluations (e.g. knn_top1), sent once by rank 0 before it exits. */
  results?: Record<string, number>;
}
export interface CheckpointReportMsg {
  jobId: string; generation: number; step: number; ok: boolean;
  path: string; bytes: number; sha256: string; error: string;
}
export interface RendezvousReadyMsg {jobId: string; generation: number; address: string}
export interface AgentEventMsg {
  jobId: string; generation: number; level: string; message: string;
  /** The agent is shutting down (SIGTERM): it will leave after its trainers checkpoint. */
  draining: boolean;
}

export type AgentMsg =
  | {kind: 'hello'; hello: HelloMsg}
  | {kind: 'heartbeat'; sentUnixMs: number}
  | {kind: 'trainer'; trainer: TrainerStatusMsg}
  | {kind: 'progress'; progress: ProgressMsg}
  | {kind: 'checkpoint'; checkpoint: CheckpointReportMsg}
  | {kind: 'rendezvous'; rendezvous: RendezvousReadyMsg}
  | {kind: 'event'; event: AgentEventMsg};

export interface AssignmentMsg {
  jobId: string;
  generation: number;
  rank: number;
  worldSize: number;
  deviceId: string;
  hostRendezvous: boolean;
  rendezvousAddress: string;
  specJson: string;
  /** The coordinator's sha256 of the resolved spec (Job.specHash); checkpoints record it. */
  specHash: string;
  schedule: ScheduleState;
  resumeCheckpoint: string;
  checkpointDir: string;
  telemetryAddress: string;
  stopAtStep: number;
  /** HMAC-SHA256 key of this rank's telemetry frames (only this assignment gets it). */
  telemetryKey: Uint8Array;
}

export type CommandName = 'CHECKPOINT_NOW' | 'STOP_AT_STEP' | 'ABORT';

export type CoordinatorMsg =
  | {kind: 'welcome'; agentId: string; heartbeatIntervalMs: number; telemetryAddress: string; sessionKey?: string}
  | {kind: 'assign'; assign: AssignmentMsg}
  | {kind: 'command'; jobId: string; generation: number; command: CommandName; step: number};
