/**
 * A tiny method + path router over node:http. No router dependency: the API has a dozen fixed routes,
 * and this keeps the server's whole request path readable in a few files.
 */
import type {IncomingMessage, ServerResponse} from 'node:http';

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
  /** Changes state: needs write access (bearer token where required). */
  write: boolean;
}

export type Match = {kind: 'found'; handler: Handler; params: Record<string, string>; write: boolean}
  | {kind: 'method-not-allowed'; allow: string[]}
  | {kind: 'not-found'};

export class Router {
  private readonly routes: Route[] = [];

  /** `path` like "/v1/jobs/:id/metrics"; a parameter matches one path segment. */
  add(method: string, path: string, handler: Handler, opts: {write?: boolean} = {}): this {
    const keys: string[] = [];
    const source = path.replace(/:([a-zA-Z]+)/g, (_m, k: string) => {
      keys.push(k);
      return '([^/]+)';
    });
    this.routes.push({method, pattern: new RegExp(`^${source}$`), keys, handler, write: opts.write ?? false});
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
      const params: Record<string, string> = {};
      r.keys.forEach((k, i) => (params[k] = decodeURIComponent(m[i + 1])));
      return {kind: 'found', handler: r.handler, params, write: r.write};
    }
    return allow.length > 0 ? {kind: 'method-not-allowed', allow} : {kind: 'not-found'};
  }
}
