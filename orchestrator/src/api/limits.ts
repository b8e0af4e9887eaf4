/**
 * Resource bounds of the REST server (README "Security"): connections and event streams per client
 * address and in all, bytes queued for a client that does not read, timeouts, page sizes, exports.
 * A client past a bound is refused or dropped; the server's memory and file descriptors stay bounded.
 */
import type {IncomingMessage, Server, ServerResponse} from 'node:http';
import type {Socket} from 'node:net';
import type {Logger} from 'pino';
import {HttpError} from './http-errors';

export interface RestLimits {
  /** Open TCP connections in all, and from one client address. */
  maxConnections: number;
  maxConnectionsPerClient: number;
  /** Open event streams (SSE) in all, and from one client address. */
  maxStreams: number;
  maxStreamsPerClient: number;
  /** A response with more than this many bytes queued (the client does not read) is dropped. */
  maxQueuedBytes: number;
  /** A connection with no traffic either way for this long is closed (exports exempt while they run). */
  idleTimeoutMs: number;
  /** Longest wait for a request's headers, and for its body once the headers are in. */
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  /** Exports (each a Python process) running at once; more get 429. */
  maxExports: number;
  /** Requests one connection may have waiting for their replies (HTTP pipelining); past it the connection is cut. */
  maxPipelined: number;
  /** Items in a list reply when `limit` is not given, and the largest `limit` accepted. */
  defaultPage: number;
  maxPage: number;
}

export const DEFAULT_LIMITS: RestLimits = {
  maxConnections: 1024, maxConnectionsPerClient: 64, maxStreams: 256, maxStreamsPerClient: 16,
  maxQueuedBytes: 1 << 20, idleTimeoutMs: 60_000, headersTimeoutMs: 20_000, bodyTimeoutMs: 30_000,
  maxExports: 2, maxPipelined: 16, defaultPage: 1000, maxPage: 10_000,
};

/** Counts per client address with a cap per address and in all. */
export class Gate {
  private readonly byClient = new Map<string, number>();
  private total = 0;

  constructor(private readonly max: number, private readonly maxPerClient: number) {}

  /** A release function, or undefined when `client` is over its cap or the total is. */
  tryAcquire(client: string): (() => void) | undefined {
    const n = this.byClient.get(client) ?? 0;
    if (this.total >= this.max || n >= this.maxPerClient) return undefined;
    this.byClient.set(client, n + 1);
    this.total += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total -= 1;
      const left = (this.byClient.get(client) ?? 1) - 1;
      if (left <= 0) this.byClient.delete(client);
      else this.byClient.set(client, left);
    };
  }

  /** Like tryAcquire, but 429 with `what` in the message when over a cap. */
  acquire(client: string, what: string): () => void {
    const release = this.tryAcquire(client);
    if (!release) {
      throw new HttpError(429, 'too_many', `too many open ${what} (at most ${this.maxPerClient} per client, ${this.max} in all); close some and retry`);
    }
    return release;
  }
}

/**
 * Applies the connection caps and timeouts to a node:http(s) server. Returns the check each request
 * passes first: false (do nothing) when its connection is gone or already has `maxPipelined` requests
 * waiting for replies. Node parses a whole pipelined burst before it notices the client does not read,
 * so without the check one connection's burst of 2000 `GET /metrics` queues 2000 replies.
 */
export function boundServer(server: Server, limits: RestLimits, log: Logger): (req: IncomingMessage, res: ServerResponse) => boolean {
  server.headersTimeout = limits.headersTimeoutMs;
  // Whole request (headers + body); Node stops counting once the request is in, so event streams live on.
  server.requestTimeout = limits.headersTimeoutMs + limits.bodyTimeoutMs;
  server.timeout = limits.idleTimeoutMs; // idle sockets (a reader that stopped reading) are destroyed
  server.keepAliveTimeout = Math.min(5000, limits.idleTimeoutMs);
  const gate = new Gate(limits.maxConnections, limits.maxConnectionsPerClient);
  let warned = 0;
  server.on('connection', (socket: Socket) => {
    const release = gate.tryAcquire(socket.remoteAddress ?? '?');
    if (!release) {
      if (Date.now() - warned > 10_000) {
        warned = Date.now();
        log.warn({client: socket.remoteAddress, limits: {total: limits.maxConnections, perClient: limits.maxConnectionsPerClient}},
          'REST connection refused: too many open connections (from this client or in all)');
      }
      socket.destroy();
      return;
    }
    socket.once('close', release);
  });
  const waiting = new WeakMap<Socket, number>();
  let warnedPipelined = 0;
  return (req, res) => {
    const socket = req.socket;
    if (socket.destroyed) return false;
    const n = (waiting.get(socket) ?? 0) + 1;
    if (n > limits.maxPipelined) {
      if (Date.now() - warnedPipelined > 10_000) {
        warnedPipelined = Date.now();
        log.warn({client: socket.remoteAddress, maxPipelined: limits.maxPipelined},
          'REST connection cut: it sent more pipelined requests than it reads replies for');
      }
      socket.destroy();
      return false;
    }
    waiting.set(socket, n);
    res.once('close', () => waiting.set(socket, (waiting.get(socket) ?? 1) - 1));
    return true;
  };
}

/** A `limit` query value clamped to the page bounds: default when absent, 400 above the maximum. */
export function pageSize(limit: number | undefined, limits: RestLimits): number {
  if (limit === undefined) return limits.defaultPage;
  if (limit > limits.maxPage) {
    throw new HttpError(400, 'bad_query', `query parameter limit must be <= ${limits.maxPage}; page with sinceStep / after`, [{path: 'limit', message: `must be <= ${limits.maxPage}`}]);
  }
  return limit;
}
