/**
 * What the coordinator's modules share: stores, registries, the live state, knobs. start.ts builds the whole;
 * each module's functions take only the fields they use (Pick<CoordinatorContext, ...>, named in lifecycle.ts).
 */
import type {Logger} from 'pino';
import type {AgentCredentials} from '../agents/agent-credentials';
import type {AgentRegistry} from '../agents/agent-registry';
import type {CheckpointRegistry} from '../checkpoints/checkpoint-registry';
import type {Launcher} from '../domain/launcher';
import type {RateLimitedWarn} from '../log/rate-limited-warn';
import type {JobStore} from '../domain/store';
import type {HealthMonitor} from '../health/health-monitor';
import type {Outgoing} from '../rendezvous/generation-run';
import type {CoordinatorMetrics} from '../telemetry/prom-metrics';
import type {TelemetryIngest} from '../telemetry/ingest';
import type {EventBus} from './event-bus';
import type {LiveState} from './live-state';

export interface CoordinatorKnobs {
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  metricsMaxPoints: number;
  checkpointRoot: string;
  dataRoots: string[];
  /** How long rank 0's agent has to answer RendezvousReady. */
  rendezvousTimeoutMs: number;
  /** After a coordinator restart: how long running generations wait for their agents to re-attach. */
  reattachGraceMs: number;
  /** How long a device waits for its aborted trainer's end report before it is reused anyway. */
  settleTimeoutMs: number;
  /** Generations in a row that end without progress before the job is FAILED. */
  maxFruitlessGenerations: number;
}

export interface CoordinatorContext {
  readonly store: JobStore;
  readonly agents: AgentRegistry;
  /** Issues and checks per-agent session keys (agent-claim.ts). */
  readonly credentials: AgentCredentials;
  readonly checkpoints: CheckpointRegistry;
  readonly launcher: Launcher;
  readonly telemetry: TelemetryIngest;
  readonly metrics: CoordinatorMetrics;
  readonly events: EventBus;
  /** Health across ranks (collapse, skew, stalled ranks) from the aggregated points. */
  readonly health: HealthMonitor;
  readonly log: Logger;
  /** Warnings a hostile peer can trigger at will (rejected reports): one per reason per interval. */
  readonly warnLimited: RateLimitedWarn;
  readonly knobs: CoordinatorKnobs;
  /** host:port agents dial; tcp://host:port trainers push metrics to. Set by start.ts once bound. */
  grpcAddress: string;
  telemetryAddress: string;
  /** Generations, fault times, launcher requests and draining agents: owned by live-state.ts. */
  readonly live: LiveState;
  /** Set by start.ts while shutting down: streams closing then are not agent losses. */
  closing: boolean;
  /** Ask for a placement round soon (coalesced; placement-round.ts). */
  requestPlacement(): void;
}

export function sendAll(ctx: Pick<CoordinatorContext, 'agents' | 'log'>, out: Outgoing[]): void {
  for (const o of out) {
    if (!ctx.agents.send(o.agentId, o.msg)) ctx.log.debug({agentId: o.agentId, kind: o.msg.kind}, 'agent not connected; message not sent');
  }
}
