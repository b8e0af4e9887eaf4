/** The REST server (docs/architecture.md §3) on node:http: routing, auth, JSON replies and errors in one place. */
import {createServer as createHttpServer, type IncomingMessage, type ServerResponse} from 'node:http';
import {createServer as createHttpsServer} from 'node:https';
import type {AddressInfo} from 'node:net';
import type {Registry} from 'prom-client';
import type {Logger} from 'pino';
import type {CoordinatorApi} from '../domain/coordinator-api';
import {checkAccess, checkHost, listenRefusal, tokenRequired} from './auth';
import {MAX_BODY_BYTES} from './body';
import {HttpError, toHttpError} from './http-errors';
import {boundServer, DEFAULT_LIMITS, type RestLimits} from './limits';
import {decodeParams, type Reply} from './router';
import {buildRoutes, fallbackRegistry} from './routes';
import {addDashboardRoutes} from '../web/dashboard-routes';

export interface ApiServerOptions {
  api: CoordinatorApi;
  logger: Logger;
  /** Listen address. Default '127.0.0.1'; a non-loopback address needs `token` (or `insecureNoToken`). */
  host?: string;
  /** Port; default 8080; 0 = any free port. */
  port?: number;
  /** Bearer token every route but /healthz and /readyz needs (BYOL_API_TOKEN). Default: none (loopback only). */
  token?: string;
  /** Listen beyond loopback without a token, every route open (--insecure-no-token). Default false: refused. */
  insecureNoToken?: boolean;
  /** Serve Prometheus /metrics without the token (--metrics-public). Default false. */
  metricsPublic?: boolean;
  /** Connection, stream, timeout, page and export bounds; each defaults to DEFAULT_LIMITS. */
  limits?: Partial<RestLimits>;
  /** Python with byol_worker installed, for /export. Default 'python3'. */
  pythonBin?: string;
  /** Prometheus registry served at /metrics. Default: a registry with jobs by state. */
  registry?: Registry;
  /** Largest request body. Default 1 MiB. */
  maxBodyBytes?: number;
  /** Keep-alive comment interval on event streams. Default 15000 ms. */
  sseKeepAliveMs?: number;
  /** Longest an export may run. Default 600000 ms. */
  exportTimeoutMs?: number;
  /** PEM certificate and key: serve HTTPS instead of HTTP (docs/architecture.md §11). Default: plain HTTP. */
  tls?: {cert: string | Buffer; key: string | Buffer};
}

export interface ApiServer {
  /** e.g. "http://127.0.0.1:8080" */
  url: string;
  host: string;
  port: number;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy(); // a streaming reply broke midway; the client sees a cut connection
    return;
  }
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {'content-type': 'application/json; charset=utf-8', ...headers, 'content-length': String(Buffer.byteLength(text))});
  res.end(text);
}

/** The request target as a URL; one that does not parse (`GET http://[`) is the client's error, not a crash. */
function parseTarget(target: string | undefined): URL {
  try {
    return new URL(target ?? '/', 'http://localhost');
  } catch {
    throw new HttpError(400, 'bad_path', `request target '${String(target).slice(0, 100)}' is not a valid URL path`);
  }
}

export async function startApiServer(o: ApiServerOptions): Promise<ApiServer> {
  const host = o.host ?? '127.0.0.1';
  const log = o.logger.child({module: 'rest'});
  const policy = {host, token: o.token, insecureNoToken: o.insecureNoToken};
  const refusal = listenRefusal(policy);
  if (refusal) throw new Error(refusal);
  const limits: RestLimits = {...DEFAULT_LIMITS, ...o.limits};
  const router = buildRoutes({
    api: o.api, logger: log, pythonBin: o.pythonBin ?? 'python3', registry: o.registry ?? fallbackRegistry(o.api),
    maxBodyBytes: o.maxBodyBytes ?? MAX_BODY_BYTES, sseKeepAliveMs: o.sseKeepAliveMs ?? 15000,
    exportTimeoutMs: o.exportTimeoutMs ?? 600000, version: '0.1.0', limits, metricsPublic: o.metricsPublic ?? false,
  });
  addDashboardRoutes(router, {api: o.api, tokenRequired: o.token !== undefined, limits}); // the web page, same auth (web/)
  let port = 0;

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    let url = new URL('/', 'http://localhost');
    try {
      url = parseTarget(req.url);
      checkHost(req, policy, port);
      const m = router.match(req.method ?? 'GET', url.pathname);
      if (m.kind === 'not-found') throw new HttpError(404, 'not_found', `no route ${req.method} ${url.pathname}; see /openapi.json`);
      if (m.kind === 'method-not-allowed') {
        res.setHeader('allow', m.allow.join(', '));
        throw new HttpError(405, 'method_not_allowed', `${req.method} is not allowed on ${url.pathname}; use ${m.allow.join(' or ')}`);
      }
      if (!m.open) checkAccess(req, policy);
      const params = decodeParams(m.rawParams); // after the auth check: a bad encoding tells a stranger nothing
      const reply: Reply | undefined = await m.handler({req, res, params, query: url.searchParams});
      if (reply) send(res, reply.status ?? 200, reply.body ?? null, reply.headers);
    } catch (err) {
      const {status, body} = toHttpError(err);
      if (status >= 500) log.error({err, method: req.method, path: url.pathname}, 'request failed');
      else log.debug({method: req.method, path: url.pathname, status, error: body.error}, 'request refused');
      // A body cut off for size or time is not read further: close the connection after the reply.
      send(res, status, body, status === 408 || status === 413 ? {connection: 'close'} : {});
    }
  };

  let admit = (_req: IncomingMessage, _res: ServerResponse) => true;
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    if (admit(req, res)) void handle(req, res);
  };
  const serverOptions = {connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs)};
  const server = o.tls ? createHttpsServer({...serverOptions, cert: o.tls.cert, key: o.tls.key}, listener) : createHttpServer(serverOptions, listener);
  admit = boundServer(server, limits, log);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 8080, host, () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  if (listenRefusal({...policy, insecureNoToken: false})) {
    log.warn({host, port}, 'REST listens beyond loopback without an API token (--insecure-no-token): anyone who reaches it may submit, cancel and export');
  }
  log.info({host, port, tls: Boolean(o.tls), tokenRequired: tokenRequired(policy), metricsPublic: o.metricsPublic ?? false}, 'REST API listening');
  return {
    url: `${o.tls ? 'https' : 'http'}://${urlHost}:${port}`,
    host,
    port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections(); // ends open event streams, so close() does not wait for clients
    }),
  };
}
