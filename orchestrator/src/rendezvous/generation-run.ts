/**
 * One generation of a job's rank group (docs/internals.md, steps 3-6): two-phase assignment
 * (rank 0's agent hosts the TCPStore and answers RendezvousReady, then every rank is assigned
 * with the address), per-rank trainer state, and fencing: messages of another generation are
 * not this run's business.
 */
import type {AssignmentMsg, CoordinatorMsg, TrainerStateName} from '../agents/agent-messages';
import type {ScheduleState} from '../domain/types';

export type GenerationPhase = 'rendezvous' | 'assigned' | 'reattaching' | 'ended';

export interface RankSlot {
  rank: number;
  agentId: string;
  deviceId: string;
  state: TrainerStateName;
  step: number;
  /** The last step this rank's own progress named (per rank, progress only goes forward). */
  lastProgress: number;
  exitCode: number;
  message: string;
}

/** What a generation is started with, fixed for its life: every rank's Assignment is built from it. */
export interface GenerationSetup {
  jobId: string;
  generation: number;
  ranks: {agentId: string; deviceId: string}[];
  schedule: ScheduleState;
  specJson: string;
  specHash: string;
  resumeCheckpoint: string;
  resumeStep: number;
  checkpointDir: string;
  telemetryAddress: string;
  /** Per rank: the key its telemetry frames are signed with (sent only in that rank's assignment). */
  telemetryKeys: Uint8Array[];
}

export type Outgoing = {agentId: string; msg: CoordinatorMsg};

const TERMINAL: TrainerStateName[] = ['SUCCEEDED', 'PREEMPTED', 'FAILED', 'ABORTED'];
export const isTerminal = (s: TrainerStateName): boolean => TERMINAL.includes(s);

export class GenerationRun {
  phase: GenerationPhase;
  rendezvousAddress = '';
  readonly ranks: RankSlot[];
  readonly startedAtMs: number;
  firstProgressSeen = false;

  constructor(readonly setup: GenerationSetup, opts: {reattaching?: boolean; nowMs?: number} = {}) {
    this.phase = opts.reattaching ? 'reattaching' : 'rendezvous';
    this.startedAtMs = opts.nowMs ?? Date.now();
    this.ranks = setup.ranks.map((r, rank) => ({
      rank, agentId: r.agentId, deviceId: r.deviceId, state: 'UNSPECIFIED', step: setup.resumeStep, lastProgress: 0, exitCode: 0, message: '',
    }));
  }

  get jobId(): string { return this.setup.jobId; }
  get generation(): number { return this.setup.generation; }
  get worldSize(): number { return this.ranks.length; }

  /** Fencing: true only for messages of this very generation. */
  accepts(jobId: string, generation: number): boolean {
    return jobId === this.setup.jobId && generation === this.setup.generation && this.phase !== 'ended';
  }

  private assignment(rank: number, hostRendezvous: boolean, address: string): AssignmentMsg {
    const p = this.setup;
    return {
      jobId: p.jobId, generation: p.generation, rank, worldSize: this.worldSize, deviceId: this.ranks[rank].deviceId,
      hostRendezvous, rendezvousAddress: address, specJson: p.specJson, specHash: p.specHash, schedule: p.schedule,
      resumeCheckpoint: p.resumeCheckpoint, checkpointDir: p.checkpointDir, telemetryAddress: p.telemetryAddress,
      stopAtStep: 0, telemetryKey: p.telemetryKeys[rank] ?? new Uint8Array(),
    };
  }

  /** Phase 1: ask rank 0's agent to host the rendezvous store. */
  begin(): Outgoing[] {
    return [{agentId: this.ranks[0].agentId, msg: {kind: 'assign', assign: this.assignment(0, true, '')}}];
  }

  /** Phase 2: the store is up; assign every rank (rank 0 again, now with the address = start). */
  onRendezvousReady(address: string): Outgoing[] {
    if (this.phase !== 'rendezvous') return [];
    this.rendezvousAddress = address;
    this.phase = 'assigned';
    return this.ranks.map((r) => ({
      agentId: r.agentId,
      msg: {kind: 'assign', assign: this.assignment(r.rank, r.rank === 0, address)},
    }));
  }

  /** Records a trainer state; returns the slot, or undefined for a rank this run does not have. */
  updateRank(rank: number, state: TrainerStateName, step: number, exitCode = 0, message = ''): RankSlot | undefined {
    const slot = this.ranks[rank];
    if (!slot) return undefined;
    if (isTerminal(slot.state)) return slot; // a late duplicate never revives a rank
    slot.state = state;
    if (step > 0) slot.step = Math.max(slot.step, step);
    slot.exitCode = exitCode;
    slot.message = message;
    return slot;
  }

  allIn(...states: TrainerStateName[]): boolean {
    return this.ranks.every((r) => states.includes(r.state));
  }

  /** Abort commands for the ranks still alive (their agents kill trainers and the TCPStore). */
  abortLive(): Outgoing[] {
    const agents = new Set(this.ranks.filter((r) => !isTerminal(r.state)).map((r) => r.agentId));
    if (this.phase === 'rendezvous') agents.add(this.ranks[0].agentId);
    return [...agents].map((agentId) => ({
      agentId, msg: {kind: 'command', jobId: this.jobId, generation: this.generation, command: 'ABORT', step: 0},
    }));
  }

  /** Steps completed: ranks move in lockstep, so the furthest report is the group's step. */
  progressStep(): number {
    return Math.max(...this.ranks.map((r) => r.step));
  }

  agentIds(): string[] {
    return this.ranks.map((r) => r.agentId);
  }
}
