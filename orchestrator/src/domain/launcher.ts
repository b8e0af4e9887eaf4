import type {JobSpec} from './types';

/** What a launcher needs to bring up the agents for one job. */
export interface LaunchRequest {
  jobId: string;
  /** Agents (one device each) the job wants now; the coordinator still does the gang placement (placement/). */
  workers: number;
  spec: JobSpec;
  /** host:port agents dial (the coordinator's gRPC address as seen from where the agents run). */
  coordinatorAddress: string;
}

/** A loss the launcher noticed itself (e.g. a pod evicted or deleted) before the agent's stream closed. */
export interface AgentLoss {
  jobId: string;
  /** Agent id when known (agents started by a launcher get ids the launcher chose). */
  agentId?: string;
  reason: string; // 'evicted' | 'deleted' | 'exited' | ...
}

/**
 * Brings agents up for jobs and takes them down after (docs/architecture.md §2, issue 3 "Launchers").
 * `local` spawns agent processes here, `external` does nothing (agents are started by srun, pods, hosts),
 * `kubernetes` creates an Indexed Job and a headless Service per job.
 */
export interface Launcher {
  readonly name: 'local' | 'external' | 'kubernetes';
  /** Make sure the job's agents exist or are coming. Idempotent: called again after losses. */
  ensureAgents(req: LaunchRequest): Promise<void>;
  /** The job ended (any terminal state): remove everything created for it. Idempotent. */
  release(jobId: string): Promise<void>;
  /** Subscribe to losses the launcher sees on its own. */
  onLoss(listener: (loss: AgentLoss) => void): void;
  /** Stop watching and, for `local`, stop every agent it started. */
  close(): Promise<void>;
}
