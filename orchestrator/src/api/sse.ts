/** Server-sent events for a job (`byolctl logs -f`): replay from Last-Event-ID, then live, with keep-alives. */
import type {ServerResponse} from 'node:http';
import type {CoordinatorApi} from '../domain/coordinator-api';
import {NotFoundError} from '../domain/errors';
import {TERMINAL_STATES, type JobEvent, type JobState} from '../domain/types';

/** Ends a stream after the job's terminal state event (and right after replay for a finished job). */
function terminalState(ev: JobEvent): JobState | null {
  const to = ev.type === 'state' ? (ev.data?.to as JobState | undefined) : undefined;
  return to && TERMINAL_STATES.includes(to) ? to : null;
}

/** Where a stream's bounds come from (api/limits.ts). */
export interface StreamBounds {
  /** Bytes queued for the client past which it is dropped as a non-reader. */
  maxQueuedBytes: number;
  onDrop: (queued: number) => void;
}

/** Writes, then drops the client when it lets too much pile up (it is not reading). */
function writeBounded(res: ServerResponse, text: string, b: StreamBounds): void {
  if (res.destroyed || res.writableEnded) return;
  res.write(text);
  if (res.writableLength > b.maxQueuedBytes) {
    b.onDrop(res.writableLength);
    res.destroy();
  }
}

export function writeEvent(res: ServerResponse, ev: JobEvent, b: StreamBounds): void {
  writeBounded(res, `id: ${ev.seq}\ndata: ${JSON.stringify(ev)}\n\n`, b);
}

/**
 * Streams events with seq > afterSeq. Subscribes before replaying so nothing falls in between, and
 * drops live duplicates of replayed events. Returns when the response is closed.
 */
export function streamEvents(api: CoordinatorApi, id: string, afterSeq: number, res: ServerResponse, keepAliveMs: number, b: StreamBounds): void {
  const job = api.getJob(id);
  if (!job) throw new NotFoundError('job', id);
  let last = afterSeq;
  let replaying = true;
  const pending: JobEvent[] = [];
  const finish = (state: JobState) => {
    writeBounded(res, `event: end\ndata: ${JSON.stringify({state})}\n\n`, b);
    if (!res.destroyed) res.end();
  };
  const deliver = (ev: JobEvent) => {
    if (ev.seq <= last || res.writableEnded || res.destroyed) return;
    last = ev.seq;
    writeEvent(res, ev, b);
    const end = terminalState(ev);
    if (end) finish(end);
  };
  const unsubscribe = api.subscribe(id, (ev) => (replaying ? pending.push(ev) : deliver(ev)));
  const timer = setInterval(() => writeBounded(res, ': keep-alive\n\n', b), keepAliveMs);
  timer.unref();
  res.on('close', () => {
    clearInterval(timer);
    unsubscribe();
  });

  res.writeHead(200, {'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no'});
  res.write('retry: 2000\n\n');
  // Replay a page at a time, so a long history never sits in memory twice over for one client.
  for (let page = api.events(id, {afterSeq, limit: 500}); page.length > 0 && !res.destroyed && !res.writableEnded; page = api.events(id, {afterSeq: last, limit: 500})) {
    for (const ev of page) deliver(ev);
  }
  replaying = false;
  for (const ev of pending.splice(0)) deliver(ev);
  const now = api.getJob(id);
  if (!res.writableEnded && !res.destroyed && now && TERMINAL_STATES.includes(now.state)) finish(now.state);
}
