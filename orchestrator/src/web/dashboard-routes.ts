/**
 * The dashboard's routes on the REST server (same listener, same auth): the page and its files at `/`
 * and `/ui/`, and two read APIs only the page needs: downsampled plot series and the live feed.
 * Everything else the page reads is the public REST API (/v1/jobs, /v1/workers, ...).
 */
import type {IncomingMessage, ServerResponse} from 'node:http';
import {gzipSync} from 'node:zlib';
import type {CoordinatorApi} from '../domain/coordinator-api';
import {NotFoundError} from '../domain/errors';
import {HttpError} from '../api/http-errors';
import {collapseZStd, policyOf} from '../health/health-rules';
import {Gate, type RestLimits} from '../api/limits';
import type {Router} from '../api/router';
import {streamLive} from './live-stream';
import {buildSeries} from './series';
import {loadAssets, type Asset} from './static-assets';

export interface DashboardOptions {
  api: CoordinatorApi;
  /** True when the server has an API token: the page asks for it and sends it on every call. */
  tokenRequired: boolean;
  /** Live feed period. Default 1000 ms. */
  liveEveryMs?: number;
  /** The REST server's caps: live feeds count like event streams (their own gate), slow readers are cut. */
  limits: RestLimits;
}

/** The page loads only its own files and talks only to this server. */
const CSP = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

function sendAsset(res: ServerResponse, a: Asset): undefined {
  res.writeHead(200, {'content-type': a.type, 'content-length': String(a.body.length), 'cache-control': 'no-cache',
    'x-content-type-options': 'nosniff', 'content-security-policy': CSP});
  res.end(a.body);
  return undefined;
}

/** JSON, gzipped when the client takes it (the series of a 64-rank job are a few hundred kB of digits). */
function sendJson(req: IncomingMessage, res: ServerResponse, body: unknown): undefined {
  const text = Buffer.from(JSON.stringify(body));
  const gzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
  const out = gzip ? gzipSync(text, {level: 6}) : text;
  res.writeHead(200, {'content-type': 'application/json; charset=utf-8', 'content-length': String(out.length),
    ...(gzip ? {'content-encoding': 'gzip'} : {}), vary: 'accept-encoding'});
  res.end(out);
  return undefined;
}

function intQuery(q: URLSearchParams, name: string, dflt: number, max: number): number {
  const raw = q.get(name);
  if (raw === null || raw === '') return dflt;
  if (!/^\d+$/.test(raw) || Number(raw) > max) {
    throw new HttpError(400, 'bad_query', `query parameter ${name} must be an integer from 0 to ${max}`, [{path: name, message: `must be an integer from 0 to ${max}`}]);
  }
  return Number(raw);
}

export function addDashboardRoutes(router: Router, o: DashboardOptions): Router {
  const assets = loadAssets();
  const page = assets.get('index.html')!;
  const {api} = o;
  const feeds = new Gate(o.limits.maxStreams, o.limits.maxStreamsPerClient);
  // The page and its files hold no data: open, so a browser can load them and then ask for the token.
  // Everything with data (the REST API, series, live feed) needs the token where the server has one.
  const open = {open: true};
  return router
    .add('GET', '/', ({res}) => sendAsset(res, page), open)
    .add('GET', '/ui', ({res}) => sendAsset(res, page), open)
    .add('GET', '/ui/:file', ({res, params}) => {
      const a = assets.get(params.file);
      if (!a) throw new HttpError(404, 'not_found', `no dashboard file ${params.file}`);
      return sendAsset(res, a);
    }, open)
    .add('GET', '/ui/api/session', () => ({body: {tokenRequired: o.tokenRequired}}), open)
    // Answers 200 only with the right token where one is set: the page checks a token with it.
    .add('GET', '/ui/api/auth', () => ({body: {ok: true}}))
    .add('GET', '/ui/api/jobs/:id/series', ({req, res, params, query}) => {
      const job = api.getJob(params.id);
      if (!job) throw new NotFoundError('job', params.id);
      const width = Math.max(16, intQuery(query, 'width', 800, 4000));
      const spec = job.spec.spec;
      const body = {...buildSeries(api.metrics(params.id), width, (steps) => api.rankMetrics(params.id, steps)), collapseZStd: collapseZStd(spec, policyOf(spec))};
      return sendJson(req, res, body);
    })
    .add('GET', '/ui/api/jobs/:id/live', ({req, res, params, query}) => {
      const release = feeds.acquire(req.socket.remoteAddress ?? '?', 'live feeds');
      res.once('close', release);
      try {
        streamLive(api, params.id, intQuery(query, 'fromStep', 0, Number.MAX_SAFE_INTEGER) - 1,
          intQuery(query, 'afterSeq', 0, Number.MAX_SAFE_INTEGER), res, o.liveEveryMs ?? 1000, o.limits.maxQueuedBytes);
      } catch (err) {
        release();
        throw err;
      }
      return undefined;
    });
}
