/**
 * The coordinator side of each agent stream: Hello -> Welcome and registration (re-attaching
 * trainers a restarted coordinator finds running), heartbeats, dispatch of reports, and loss
 * (stream closed, heartbeat timeout, or the launcher saw the agent go).
 */
import type {AgentConnection, AgentStreamHandler} from '../agents/agent-connection';
import type {AgentMsg, HelloMsg} from '../agents/agent-messages';
import {claimRefusal} from './agent-claim';
import {sendAll, type CoordinatorContext} from './context';
import {endGeneration, type EndContext} from './lifecycle';
import {onAgentEvent, onCheckpoint, onProgress, onRendezvous, onTrainerStatus, type ReportContext} from './trainer-reports';

/** An agent stream: registration (credentials, the Welcome's telemetry address) and every report. */
export type SessionContext = ReportContext & Pick<CoordinatorContext, 'credentials' | 'telemetryAddress'>;

export function agentStreamHandler(ctx: SessionContext): AgentStreamHandler {
  return {
    onOpen(conn: AgentConnection) {
      let agentId: string | null = null;
      return {
        onMessage(msg: AgentMsg) {
          if (agentId === null) {
            if (msg.kind !== 'hello') {
              conn.close('the first message on the stream must be Hello');
              return;
            }
            if (!onHello(ctx, conn, msg.hello)) return;
            agentId = msg.hello.agentId;
            return;
          }
          if (ctx.agents.get(agentId)?.conn !== conn) {
            // A newer stream took this agent id over: this one speaks for nobody any more.
            if (msg.kind !== 'heartbeat') ctx.metrics.rejectedReports.inc({kind: msg.kind, reason: 'replaced_stream'});
            return;
          }
          ctx.agents.touch(agentId);
          dispatch(ctx, agentId, msg);
        },
        onClose(reason: string) {
          if (ctx.closing) return; // a coordinator restart: agents re-attach to the next one
          if (agentId !== null && ctx.agents.get(agentId)?.conn === conn) agentLost(ctx, agentId, reason);
        },
      };
    },
  };
}

function dispatch(ctx: ReportContext, agentId: string, msg: AgentMsg): void {
  switch (msg.kind) {
    case 'heartbeat': return;
    case 'rendezvous': return onRendezvous(ctx, agentId, msg.rendezvous);
    case 'trainer': return onTrainerStatus(ctx, agentId, msg.trainer);
    case 'progress': return onProgress(ctx, agentId, msg.progress);
    case 'checkpoint': return onCheckpoint(ctx, agentId, msg.checkpoint);
    case 'event': return onAgentEvent(ctx, agentId, msg.event);
    case 'hello': ctx.log.warn({agentId}, 'second Hello on one stream ignored'); return;
  }
}

type HelloContext = Pick<CoordinatorContext,
  'credentials' | 'agents' | 'live' | 'events' | 'log' | 'knobs' | 'telemetryAddress' | 'requestPlacement'>;

/** Registers the agent; false when its Hello was refused (the stream is then closed). */
function onHello(ctx: HelloContext, conn: AgentConnection, hello: HelloMsg): boolean {
  if (!hello.agentId) {
    conn.close('Hello.agent_id is empty; start the agent with --agent-id or let it pick one');
    return false;
  }
  const refusal = claimRefusal(ctx, hello);
  if (refusal) {
    ctx.log.warn({agentId: hello.agentId, peer: conn.peer, presentedKey: Boolean(hello.sessionKey)}, `agent refused: ${refusal}`);
    conn.close(refusal, 'permission-denied');
    return false;
  }
  const old = ctx.agents.join(hello, conn);
  old?.close('replaced by a newer stream of the same agent');
  ctx.live.clearDraining(hello.agentId);
  conn.send({kind: 'welcome', agentId: hello.agentId, heartbeatIntervalMs: ctx.knobs.heartbeatIntervalMs, telemetryAddress: ctx.telemetryAddress,
    sessionKey: ctx.credentials.keyFor(hello.agentId)});
  ctx.log.info({agentId: hello.agentId, host: hello.host, devices: hello.devices.map((d) => d.id), running: hello.running.length}, 'agent joined');
  reattach(ctx, hello);
  ctx.requestPlacement();
  return true;
}

/** Trainers the agent still runs: keep those of the current generation, abort the rest. */
function reattach(ctx: Pick<CoordinatorContext, 'live' | 'agents' | 'events' | 'log'>, hello: HelloMsg): void {
  for (const t of hello.running) {
    const run = ctx.live.runOf(t.jobId);
    const slot = run?.accepts(t.jobId, t.generation) ? run.ranks[t.rank] : undefined;
    if (run && slot && slot.agentId === hello.agentId) {
      ctx.agents.assign(hello.agentId, t.deviceId, {jobId: t.jobId, generation: t.generation, rank: t.rank});
      slot.deviceId = t.deviceId;
      slot.step = Math.max(slot.step, t.step);
      if (slot.state === 'UNSPECIFIED') slot.state = 'RUNNING';
      if (run.phase === 'reattaching' && run.ranks.every((r) => r.state !== 'UNSPECIFIED')) {
        run.phase = 'assigned';
        ctx.events.emit(t.jobId, 'info', 'generation', `generation ${t.generation}: all ${run.worldSize} rank(s) re-attached after a coordinator restart`);
      }
      continue;
    }
    ctx.log.info({agentId: hello.agentId, jobId: t.jobId, generation: t.generation}, 'aborting a trainer of a generation that is no longer current');
    sendAll(ctx, [{agentId: hello.agentId, msg: {kind: 'command', jobId: t.jobId, generation: t.generation, command: 'ABORT', step: 0}}]);
  }
}

/** The agent is gone: its generations end (fault), its devices are freed. */
export function agentLost(ctx: EndContext, agentId: string, reason: string): void {
  const conn = ctx.agents.get(agentId)?.conn;
  ctx.agents.remove(agentId); // first, so the stream's own close below is not a second loss
  conn?.close(`agent considered lost: ${reason}`);
  const wasDraining = ctx.live.clearDraining(agentId);
  ctx.log.warn({agentId, reason, wasDraining}, 'agent lost');
  for (const run of ctx.live.runsWithAgent(agentId)) {
    if (run.phase === 'ended') continue;
    // A preempted agent leaves once its ranks stopped cleanly; the other ranks are still saving
    // and reporting the same stop step, so the generation ends as 'preempted' when they have.
    const mine = run.ranks.filter((r) => r.agentId === agentId);
    if (mine.every((r) => r.state === 'PREEMPTED' || r.state === 'SUCCEEDED')) continue;
    endGeneration(ctx, run, 'worker-lost', `agent ${agentId} lost: ${reason}`);
  }
  ctx.requestPlacement();
}
