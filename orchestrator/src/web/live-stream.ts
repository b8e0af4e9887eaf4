/**
 * The job page's live feed, as server-sent events: new points (in the shape the plots append), new job
 * events and the job's view, once a second, until the job ends. The server polls its own store, so a
 * page costs one indexed range read per second, and the page gets only what is new.
 */
import type {ServerResponse} from 'node:http';
import type {CoordinatorApi, JobView} from '../domain/coordinator-api';
import {NotFoundError} from '../domain/errors';
import {TERMINAL_STATES} from '../domain/types';
import {livePoint} from './series';

/** What the page needs of a JobView on every tick (the spec goes once, with the page load). */
export function slimView(j: JobView): Omit<JobView, 'spec'> {
  const {spec: _spec, ...rest} = j;
  return rest;
}

/** Ends (destroys) the stream when more than `maxQueuedBytes` wait for a client that stopped reading. */
export function streamLive(api: CoordinatorApi, id: string, afterStep: number, afterSeq: number, res: ServerResponse,
  everyMs: number, maxQueuedBytes: number): void {
  if (!api.getJob(id)) throw new NotFoundError('job', id);
  let lastStep = afterStep;
  let lastSeq = afterSeq;
  const send = (event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  const tick = () => {
    if (res.writableEnded || res.destroyed) return;
    if (res.writableLength > maxQueuedBytes) {
      res.destroy(); // the page reconnects from where it is when it reads again
      return;
    }
    const job = api.getJob(id);
    if (!job) return;
    // At most 2000 points a tick: a page that fell far behind reloads the downsampled series instead.
    const points = api.metrics(id, {sinceStep: lastStep + 1, limit: 2000});
    if (points.length > 0) {
      lastStep = points[points.length - 1].step;
      const ranks = api.rankMetrics(id, points.map((p) => p.step));
      send('points', points.map((p) => livePoint({...p, perRank: ranks.get(p.step)})));
    }
    const events = api.events(id, {afterSeq: lastSeq, limit: 500});
    if (events.length > 0) {
      lastSeq = events[events.length - 1].seq;
      send('events', events);
    }
    send('job', slimView(job));
    if (TERMINAL_STATES.includes(job.state) && points.length < 2000) {
      send('end', {state: job.state});
      res.end();
    }
  };
  res.writeHead(200, {'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no'});
  res.write('retry: 2000\n\n');
  const timer = setInterval(tick, everyMs);
  timer.unref();
  res.on('close', () => clearInterval(timer));
  tick();
}
