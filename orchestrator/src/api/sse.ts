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

export function writeEvent(res: ServerResponse, ev: JobEvent): void {
  res.write(`id: ${ev.seq}\ndata: ${JSON.stringify(ev)}\n\n`);
}

/**
 * Streams events with seq > afterSeq. Subscribes before replaying so nothing falls in between, and
 * drops live duplicates of replayed events. Returns when the response is closed.
 */
export function streamEvents(api: CoordinatorApi, id: string, afterSeq: number, res: ServerResponse, keepAliveMs: number): void {
  const job = api.getJob(id);
  if (!job) throw new NotFoundError('job', id);
  let last = afterSeq;
  let replaying = true;
  const pending: JobEvent[] = [];
  const finish = (state: JobState) => {
    res.write(`event: end\ndata: ${JSON.stringify({state})}\n\n`);
    res.end();
  };
  const deliver = (ev: JobEvent) => {
    if (ev.seq <= last || res.writableEnded) return;
    last = ev.seq;
    writeEvent(res, ev);
    const end = terminalState(ev);
    if (end) finish(end);
  };
  const unsubscribe = api.subscribe(id, (ev) => (replaying ? pending.push(ev) : deliver(ev)));
  const timer = setInterval(() => res.write(': keep-alive\n\n'), keepAliveMs);
  timer.unref();
  res.on('close', () => {
    clearInterval(timer);
    unsubscribe();
  });

  res.writeHead(200, {'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no'});
  res.write('retry: 2000\n\n');
  for (const ev of api.events(id, {afterSeq})) deliver(ev);
  replaying = false;
  for (const ev of pending.splice(0)) deliver(ev);
  const now = api.getJob(id);
  if (!res.writableEnded && now && TERMINAL_STATES.includes(now.state)) finish(now.state);
}
