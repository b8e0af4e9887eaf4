/**
 * A tiny method + path router over node:http. No router dependency: the API has a dozen fixed routes,
 * and this keeps the server's whole request path readable in a few files.
 */
import type {IncomingMessage, ServerResponse} from 'node:http';
import {HttpError} from './http-errors';

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  params: Record<string, string>;
  query: URLSearchParams;
}

/** A JSON reply; handlers that stream (SSE, downloads) write to `res` themselves and return undefined. */
export interface Reply {
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export type Handler = (ctx: RequestContext) => Reply | undefined | Promise<Reply | undefined>;

interface Route {
  method: string;
  pattern: RegExp;
  keys: string[];
  handler: Handler;
  /** Open without the token (health probes; /metrics when made public). */
  open: boolean;
}

/** `rawParams` are still %-encoded: they are decoded (decodeParams) only after the auth check. */
export type Match = {kind: 'found'; handler: Handler; rawParams: Record<string, string>; open: boolean}
  | {kind: 'method-not-allowed'; allow: string[]}
  | {kind: 'not-found'};

export class Router {
  private readonly routes: Route[] = [];

  /** `path` like "/v1/jobs/:id/metrics"; a parameter matches one path segment. */
  add(method: string, path: string, handler: Handler, opts: {open?: boolean} = {}): this {
    const keys: string[] = [];
    const source = path.replace(/:([a-zA-Z]+)/g, (_m, k: string) => {
      keys.push(k);
      return '([^/]+)';
    });
    this.routes.push({method, pattern: new RegExp(`^${source}$`), keys, handler, open: opts.open ?? false});
    return this;
  }

  match(method: string, pathname: string): Match {
    const allow: string[] = [];
    for (const r of this.routes) {
      const m = r.pattern.exec(pathname);
      if (!m) continue;
      if (r.method !== method && !(method === 'HEAD' && r.method === 'GET')) {
        allow.push(r.method);
        continue;
      }
      const rawParams: Record<string, string> = {};
      r.keys.forEach((k, i) => (rawParams[k] = m[i + 1]));
      return {kind: 'found', handler: r.handler, rawParams, open: r.open};
    }
    return allow.length > 0 ? {kind: 'method-not-allowed', allow} : {kind: 'not-found'};
  }
}

/** %-decodes path parameters; a bad encoding is the client's error (400 naming the parameter). */
export function decodeParams(raw: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) {
    try {
      out[k] = decodeURIComponent(v);
    } catch {
      throw new HttpError(400, 'bad_path', `path parameter ${k} has a bad %-encoding: '${v.slice(0, 100)}'`, [{path: k, message: 'bad %-encoding'}]);
    }
  }
  return out;
}
