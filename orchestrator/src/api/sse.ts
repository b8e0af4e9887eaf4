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

/** Resolves when the client has taken most of what is queued, false when the stream closed instead. */
function drained(res: ServerResponse): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      res.off('drain', onDrain).off('close', onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    res.on('drain', onDrain).on('close', onClose);
  });
}

/**
 * Streams events with seq > afterSeq: replay from the store at the client's pace (waiting for it to
 * drain), then live. The switch to live happens in the same tick as the last, empty, page read, so
 * nothing falls in between; live events are written as they come and a client that lets more than
 * `maxQueuedBytes` pile up is dropped (it can resume with Last-Event-ID).
 */
export function streamEvents(api: CoordinatorApi, id: string, afterSeq: number, res: ServerResponse, keepAliveMs: number, b: StreamBounds): void {
  const job = api.getJob(id);
  if (!job) throw new NotFoundError('job', id);
  let last = afterSeq;
  let live = false;
  const gone = () => res.writableEnded || res.destroyed;
  const finish = (state: JobState) => {
    writeBounded(res, `event: end\ndata: ${JSON.stringify({state})}\n\n`, b);
    if (!res.destroyed) res.end();
  };
  const deliver = (ev: JobEvent) => {
    if (ev.seq <= last || gone()) return;
    last = ev.seq;
    writeEvent(res, ev, b);
    const end = terminalState(ev);
    if (end) finish(end);
  };
  const unsubscribe = api.subscribe(id, (ev) => (live ? deliver(ev) : undefined));
  const timer = setInterval(() => writeBounded(res, ': keep-alive\n\n', b), keepAliveMs);
  timer.unref();
  res.on('close', () => {
    clearInterval(timer);
    unsubscribe();
  });

  res.writeHead(200, {'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no'});
  res.write('retry: 2000\n\n');
  const replay = async () => {
    for (;;) {
      const page = api.events(id, {afterSeq: last, limit: 100});
      if (page.length === 0 || gone()) break;
      for (const ev of page) {
        deliver(ev);
        if (!gone() && res.writableNeedDrain && !(await drained(res))) return;
      }
    }
    live = true; // same tick as the empty page: no event is missed or repeated
    const now = api.getJob(id);
    if (!gone() && now && TERMINAL_STATES.includes(now.state)) finish(now.state);
  };
  void replay().catch(() => res.destroy());
}
