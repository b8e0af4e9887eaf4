/** The REST routes of docs/architecture.md §3: each handler only translates HTTP to a CoordinatorApi call. */
import {Gauge, Registry} from 'prom-client';
import type {Logger} from 'pino';
import type {CoordinatorApi} from '../domain/coordinator-api';
import {NotFoundError} from '../domain/errors';
import type {JobState} from '../domain/types';
import {readSpecBody} from './body';
import {exportEncoder} from './export';
import {HttpError} from './http-errors';
import {Gate, pageSize, type RestLimits} from './limits';
import {openApiDocument} from './openapi';
import {Router} from './router';
import {streamEvents} from './sse';

export interface RouteOptions {
  api: CoordinatorApi;
  logger: Logger;
  pythonBin: string;
  registry: Registry;
  maxBodyBytes: number;
  sseKeepAliveMs: number;
  exportTimeoutMs: number;
  version: string;
  limits: RestLimits;
  /** Serve /metrics without the token (--metrics-public). */
  metricsPublic: boolean;
}

const STATES = ['QUEUED', 'SCHEDULED', 'RUNNING', 'RECOVERING', 'WAITING', 'SUCCEEDED', 'FAILED', 'CANCELLED'];

/** A non-negative integer query parameter, or undefined; 400 naming the parameter otherwise. */
function intParam(q: URLSearchParams, name: string): number | undefined {
  const raw = q.get(name);
  if (raw === null || raw === '') return undefined;
  if (!/^\d+$/.test(raw)) throw new HttpError(400, 'bad_query', `query parameter ${name} must be a non-negative integer`, [{path: name, message: 'must be a non-negative integer'}]);
  return Number(raw);
}

/** A registry with jobs by state, for a coordinator that brings none of its own. */
export function fallbackRegistry(api: CoordinatorApi): Registry {
  const registry = new Registry();
  new Gauge({
    name: 'byol_jobs', help: 'jobs by state', labelNames: ['state'], registers: [registry],
    collect() {
      const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
      for (const j of api.listJobs()) counts[j.state] += 1;
      for (const [state, n] of Object.entries(counts)) this.set({state}, n);
    },
  });
  return registry;
}

export function buildRoutes(o: RouteOptions): Router {
  const {api} = o;
  const mustJob = (id: string) => {
    const job = api.getJob(id);
    if (!job) throw new NotFoundError('job', id);
    return job;
  };
  const openapi = openApiDocument(o.version);
  const {limits} = o;
  const page = (query: URLSearchParams) => pageSize(intParam(query, 'limit'), limits);
  const streams = new Gate(limits.maxStreams, limits.maxStreamsPerClient);
  const exportsRunning = {count: 0, max: limits.maxExports};
  return new Router()
    .add('GET', '/healthz', () => ({body: {ok: true}}), {open: true})
    .add('GET', '/readyz', () => (api.ready() ? {body: {ready: true}} : {status: 503, body: {error: 'not ready: store, gRPC or telemetry not up yet', code: 'not_ready'}}), {open: true})
    .add('GET', '/openapi.json', () => ({body: openapi}))
    .add('GET', '/metrics', async () => ({body: await o.registry.metrics(), headers: {'content-type': o.registry.contentType}}), {open: o.metricsPublic})
    .add('GET', '/v1/workers', () => ({body: api.workers()}))
    .add('GET', '/v1/jobs', ({query}) => {
      const states = (query.get('state') ?? '').split(',').map((s) => s.trim().toUpperCase()).filter(Boolean);
      const bad = states.find((s) => !STATES.includes(s));
      if (bad) throw new HttpError(400, 'bad_query', `query parameter state: unknown state ${bad}; one of ${STATES.join(', ')}`, [{path: 'state', message: `must be one of ${STATES.join(', ')}`}]);
      const limit = page(query);
      const jobs = api.listJobs().filter((j) => states.length === 0 || states.includes(j.state as JobState));
      return {body: jobs.slice(0, limit)};
    })
    .add('POST', '/v1/jobs', async ({req}) => {
      const job = api.submit(await readSpecBody(req, o.maxBodyBytes, limits.bodyTimeoutMs));
      o.logger.info({jobId: job.id}, 'job submitted over REST');
      return {status: 201, body: job, headers: {location: `/v1/jobs/${encodeURIComponent(job.id)}`}};
    })
    .add('GET', '/v1/jobs/:id', ({params}) => ({body: mustJob(params.id)}))
    .add('DELETE', '/v1/jobs/:id', ({params}) => ({body: api.cancel(params.id)}))
    .add('GET', '/v1/jobs/:id/metrics', ({params, query}) =>
      ({body: api.metrics(params.id, {sinceStep: intParam(query, 'sinceStep'), limit: page(query)})}))
    .add('GET', '/v1/jobs/:id/checkpoints', ({params}) => ({body: api.checkpoints(params.id)}))
    .add('GET', '/v1/jobs/:id/events', ({req, res, params, query}) => {
      const after = intParam(query, 'after') ?? 0;
      if (!String(req.headers.accept ?? '').includes('text/event-stream')) {
        return {body: api.events(params.id, {afterSeq: after, limit: page(query)})};
      }
      const lastId = req.headers['last-event-id'];
      const fromHeader = typeof lastId === 'string' && /^\d+$/.test(lastId) ? Number(lastId) : undefined;
      const client = req.socket.remoteAddress ?? '?';
      const release = streams.acquire(client, 'event streams');
      res.once('close', release);
      try {
        streamEvents(api, params.id, fromHeader ?? after, res, o.sseKeepAliveMs, {
          maxQueuedBytes: limits.maxQueuedBytes,
          onDrop: (queued) => o.logger.warn({jobId: params.id, client, queued}, 'event stream dropped: the client stopped reading'),
        });
      } catch (err) {
        release();
        throw err;
      }
      return undefined;
    })
    .add('GET', '/v1/jobs/:id/export', async ({params, res}) => {
      await exportEncoder(api, params.id, res, {pythonBin: o.pythonBin, timeoutMs: o.exportTimeoutMs, logger: o.logger,
        running: exportsRunning, idleTimeoutMs: limits.idleTimeoutMs});
      return undefined;
    });
}
