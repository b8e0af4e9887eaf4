/** The HTTP connection to a byol server: base URL, token, timeouts; every failure goes through toClientError. */
import {toClientError} from './errors';

export interface ConnectionOptions {
  /** Server URL. Default: BYOL_SERVER, else http://127.0.0.1:8080. */
  server?: string;
  /** Bearer token sent with every call. Default: BYOL_API_TOKEN. */
  token?: string;
  /** Per-call timeout for ordinary (non-streaming) calls. Default 30000 ms. */
  timeoutMs?: number;
}

export const DEFAULT_SERVER = 'http://127.0.0.1:8080';

export interface CallOptions {
  body?: string;
  contentType?: string;
  accept?: string;
  headers?: Record<string, string>;
  /** No timeout (event streams, downloads); the caller's signal still applies. */
  streaming?: boolean;
  signal?: AbortSignal;
  /** What a 404 means here, for NotFoundError. */
  resource?: {what: string; id: string};
}

export class Connection {
  readonly server: string;
  private readonly token?: string;
  private readonly timeoutMs: number;

  constructor(o: ConnectionOptions = {}) {
    this.server = (o.server ?? process.env.BYOL_SERVER ?? DEFAULT_SERVER).replace(/\/+$/, '');
    this.token = o.token ?? (process.env.BYOL_API_TOKEN || undefined);
    this.timeoutMs = o.timeoutMs ?? 30_000;
  }

  /** Sends one request; resolves with a 2xx Response, else throws the translated error. */
  async call(method: string, path: string, o: CallOptions = {}): Promise<Response> {
    const what = `${method} ${path}`;
    const headers: Record<string, string> = {...o.headers};
    if (o.body !== undefined) headers['content-type'] = o.contentType ?? 'application/json';
    if (o.accept) headers.accept = o.accept;
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const signals = [o.signal, o.streaming ? undefined : AbortSignal.timeout(this.timeoutMs)].filter((s): s is AbortSignal => !!s);
    let res: Response;
    try {
      res = await fetch(`${this.server}${path}`, {method, headers, body: o.body, signal: signals.length > 0 ? AbortSignal.any(signals) : undefined});
    } catch (cause) {
      if (o.signal?.aborted) throw cause; // the caller stopped; not a server problem
      throw toClientError({server: this.server, what, cause});
    }
    if (res.ok) return res;
    let body: unknown;
    try {
      body = await res.json();
    } catch {
      body = undefined;
    }
    throw toClientError({server: this.server, what, status: res.status, body, resource: o.resource});
  }

  async json<T>(method: string, path: string, o: CallOptions = {}): Promise<T> {
    const res = await this.call(method, path, o);
    return (await res.json()) as T;
  }
}
