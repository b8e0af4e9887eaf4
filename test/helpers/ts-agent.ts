/**
 * A protocol-level agent written in TypeScript over real gRPC: it plays the agent's side of
 * docs/internals.md step by step, so coordinator tests can drive exact sequences (fencing, races,
 * restarts) that a real Python agent makes hard to time. E2E tests use the Python agent.
 */
import * as grpc from '@grpc/grpc-js';
import {byol} from '../../orchestrator/src/gen/proto';
import {decodeCoordinatorMessage, encodeAgentMessage} from '../../orchestrator/src/transport/codec';
import {waitFor} from './wait';

const identity = (b: Buffer): Buffer => b;
const ClientCtor = grpc.makeGenericClientConstructor({
  Connect: {
    path: '/byol.v1.Coordinator/Connect', requestStream: true, responseStream: true,
    requestSerialize: (m: byol.v1.AgentMessage.$Properties) => encodeAgentMessage(m),
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: (b: Buffer) => decodeCoordinatorMessage(b),
  },
}, 'Coordinator');

export type Inbound = byol.v1.CoordinatorMessage;

export class TsAgent {
  readonly inbox: Inbound[] = [];
  status: grpc.StatusObject | null = null;
  private client: grpc.Client;
  private call: grpc.ClientDuplexStream<byol.v1.AgentMessage.$Properties, Inbound> | null = null;
  private hb: NodeJS.Timeout | null = null;
  /** Trainers "started" (assignments with an address), so ABORT can be answered as a real agent does. */
  private readonly started: {jobId: string; generation: number; rank: number}[] = [];
  /** Answer ABORT with TRAINER_ABORTED for the generation's trainers, as the Python agent does. */
  autoAbort = true;
  /** The session key the last Welcome gave (presented in Hello on the next connect, as the Python agent does). */
  sessionKey = '';

  constructor(address: string, readonly agentId: string, private readonly token: string, readonly devices = ['cpu:0']) {
    this.client = new ClientCtor(address, grpc.credentials.createInsecure());
  }

  /** Opens the stream and sends Hello (with `running` trainers), then heartbeats every `hbMs`. */
  connect(running: byol.v1.RunningTrainer.$Properties[] = [], hbMs = 200): this {
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${this.token}`);
    const call = (this.client as any).Connect(md) as grpc.ClientDuplexStream<byol.v1.AgentMessage.$Properties, Inbound>;
    this.call = call;
    call.on('data', (m: Inbound) => {
      this.inbox.push(m);
      if (m.welcome?.sessionKey) this.sessionKey = m.welcome.sessionKey;
      if (m.assign && m.assign.rendezvousAddress) {
        this.started.push({jobId: String(m.assign.jobId), generation: Number(m.assign.generation), rank: Number(m.assign.rank)});
      }
      if (this.autoAbort && m.command?.type === CMD.COMMAND_ABORT) {
        const gen = Number(m.command.generation);
        for (const t of this.started.filter((x) => x.jobId === m.command!.jobId && x.generation === gen)) {
          setTimeout(() => this.trainer(t.jobId, t.generation, t.rank, TS.TRAINER_ABORTED, 0, -9, 'killed by SIGKILL on the coordinator\'s abort'), 20);
        }
      }
    });
    call.on('status', (s: grpc.StatusObject) => { this.status = s; });
    call.on('error', () => undefined);
    call.write({hello: {
      agentId: this.agentId, host: '127.0.0.1',
      devices: this.devices.map((id) => ({id, kind: 'cpu', name: 'test cpu', memoryBytes: 0})),
      versions: {agent: 'ts-test'}, running, sessionKey: this.sessionKey,
    }});
    this.hb = setInterval(() => this.send({heartbeat: {sentUnixMs: Date.now()}}), hbMs);
    return this;
  }

  /** Present this key in the next Hello (an agent process that reconnects keeps the key it was given). */
  withSessionKey(key: string): this {
    this.sessionKey = key;
    return this;
  }

  send(m: byol.v1.AgentMessage.$Properties): void {
    this.call?.write(m);
  }

  /** Stops heartbeats but keeps the stream open (a hung node). */
  stopHeartbeats(): void {
    if (this.hb) clearInterval(this.hb);
    this.hb = null;
  }

  /** Waits for the next message matching `pred`, removing it from the inbox. */
  async next(what: string, pred: (m: Inbound) => boolean, timeoutMs = 10_000): Promise<Inbound> {
    return waitFor(what, () => {
      const i = this.inbox.findIndex(pred);
      return i >= 0 ? this.inbox.splice(i, 1)[0] : undefined;
    }, timeoutMs, 10);
  }

  nextAssign(opts: {host?: boolean; withAddress?: boolean; generation?: number} = {}, timeoutMs = 10_000): Promise<Inbound> {
    return this.next(`assignment to ${this.agentId}`, (m) => Boolean(m.assign) &&
      (opts.withAddress === undefined || (m.assign!.rendezvousAddress !== '') === opts.withAddress) &&
      (opts.host === undefined || Boolean(m.assign!.hostRendezvous) === opts.host) &&
      (opts.generation === undefined || Number(m.assign!.generation) === opts.generation), timeoutMs);
  }

  nextCommand(type: byol.v1.CommandType, timeoutMs = 10_000): Promise<Inbound> {
    return this.next(`command ${type} to ${this.agentId}`, (m) => Boolean(m.command) && m.command!.type === type, timeoutMs);
  }

  trainer(jobId: string, generation: number, rank: number, state: byol.v1.TrainerState, step = 0, exitCode = 0, message = ''): void {
    this.send({trainer: {jobId, generation, rank, state, step, exitCode, message}});
  }

  /** Ends the stream from the agent side (a clean exit or a crash, as the coordinator sees it). */
  close(): void {
    this.stopHeartbeats();
    this.call?.end();
    this.call?.cancel();
    this.client.close();
  }
}

export const TS = byol.v1.TrainerState;
export const CMD = byol.v1.CommandType;
