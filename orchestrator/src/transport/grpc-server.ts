/**
 * gRPC server for `byol.v1.Coordinator/Connect` (one bidirectional stream per agent).
 * Hand-written service definition over the protobufjs static codec; the token is checked
 * from the `authorization` metadata before any message is read. TLS and mTLS: transport/grpc-tls.ts.
 */
import {timingSafeEqual} from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type {Logger} from 'pino';
import type {AgentConnection, AgentStreamHandler} from '../agents/agent-connection';
import type {CoordinatorMsg} from '../agents/agent-messages';
import {decodeAgentMessage, encodeCoordinatorMessage} from './codec';
import {type GrpcTlsOptions, plaintextListenRefusal, serverCredentials} from './grpc-tls';

/** Agent -> coordinator messages are small (hello, reports); specs go the other way. */
export const MAX_RECEIVE_BYTES = 1 << 20;
export const MAX_SEND_BYTES = 8 << 20;

const identity = (b: Buffer): Buffer => b;

export const coordinatorService: grpc.ServiceDefinition = {
  Connect: {
    path: '/byol.v1.Coordinator/Connect',
    requestStream: true,
    responseStream: true,
    // Decoding happens in the handler so a bad frame is logged and named, not a bare INTERNAL.
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: (m: CoordinatorMsg) => encodeCoordinatorMessage(m),
    responseDeserialize: identity,
  },
};

export interface GrpcServerOptions {
  host: string;
  port: number;
  agentToken: string;
  logger: Logger;
  handler: AgentStreamHandler;
  /** Serve TLS (and mTLS when `clientCa` is set). Default plaintext, which only loopback allows. */
  tls?: GrpcTlsOptions;
  /** Allow plaintext beyond loopback (the user said so explicitly). */
  insecure?: boolean;
}

export interface RunningGrpcServer {
  /** host:port actually bound (port 0 resolves to the real one). */
  address: string;
  port: number;
  close(): Promise<void>;
}

function tokenMatches(header: unknown, token: string): boolean {
  if (typeof header !== 'string' || !header.startsWith('Bearer ')) return false;
  const given = Buffer.from(header.slice('Bearer '.length));
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

export async function startGrpcServer(opts: GrpcServerOptions): Promise<RunningGrpcServer> {
  const log = opts.logger.child({module: 'grpc'});
  const refusal = plaintextListenRefusal(opts.host, opts.port, opts.tls, opts.insecure ?? false);
  if (refusal) throw new Error(refusal);
  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_RECEIVE_BYTES,
    'grpc.max_send_message_length': MAX_SEND_BYTES,
  });
  const calls = new Set<grpc.ServerDuplexStream<Buffer, CoordinatorMsg>>();

  server.addService(coordinatorService, {
    Connect: (call: grpc.ServerDuplexStream<Buffer, CoordinatorMsg>) => {
      const peer = call.getPeer();
      const auth = call.metadata.get('authorization')[0];
      if (!tokenMatches(auth, opts.agentToken)) {
        log.warn({peer}, 'agent refused: missing or wrong token; start it with BYOL_AGENT_TOKEN set to the coordinator token');
        call.emit('error', {code: grpc.status.UNAUTHENTICATED, details: 'missing or wrong agent token (BYOL_AGENT_TOKEN)'});
        return;
      }
      calls.add(call);
      let closed = false;
      const conn: AgentConnection = {
        peer,
        send(msg) {
          if (!closed) call.write(msg);
        },
        close(reason, code) {
          if (closed) return;
          closed = true;
          call.emit('error', {code: code === 'permission-denied' ? grpc.status.PERMISSION_DENIED : grpc.status.ABORTED, details: reason});
        },
      };
      const session = opts.handler.onOpen(conn);
      let ended = false;
      const endOnce = (reason: string) => {
        if (ended) return;
        ended = true;
        closed = true;
        calls.delete(call);
        session.onClose(reason);
      };
      call.on('data', (buf: Buffer) => {
        let msg;
        try {
          msg = decodeAgentMessage(buf);
        } catch (err) {
          log.warn({peer, err: (err as Error).message}, 'undecodable agent message dropped; agent and coordinator protos may differ');
          return;
        }
        try {
          session.onMessage(msg);
        } catch (err) {
          // One bad report must not take the coordinator down with every other agent's stream.
          log.error({peer, kind: msg.kind, err}, 'handling an agent message failed; message dropped');
        }
      });
      call.on('end', () => {
        const wasOpen = !closed;
        endOnce('stream ended by agent');
        if (wasOpen) call.end();
      });
      call.on('error', (err: Error) => endOnce(`stream error: ${err.message}`));
      call.on('cancelled', () => endOnce('stream cancelled'));
      call.on('close', () => endOnce('stream closed'));
    },
  });

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${opts.host}:${opts.port}`, serverCredentials(opts.tls), (err, p) =>
      err ? reject(new Error(`cannot bind gRPC on ${opts.host}:${opts.port}: ${err.message}`)) : resolve(p));
  });
  const security = opts.tls ? (opts.tls.clientCa ? 'mtls' : 'tls') : 'plaintext';
  log.info({host: opts.host, port, security}, 'gRPC agent service listening');
  if (!opts.tls && opts.insecure) {
    log.warn({host: opts.host, port}, 'gRPC without TLS beyond loopback (--grpc-insecure): anyone on the path can read the agent token; use --grpc-tls-cert/--grpc-tls-key');
  }
  return {
    address: `${opts.host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of calls) c.cancelled || c.end();
        server.tryShutdown(() => resolve());
        setTimeout(() => { server.forceShutdown(); resolve(); }, 1000).unref();
      }),
  };
}
