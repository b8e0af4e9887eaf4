/** Following a job: events as lines, a live progress line on a terminal, the result at the end. */
import type {ByolClient} from '../client';
import type {JobView} from '../domain/coordinator-api';
import {TERMINAL_STATES} from '../domain/types';
import {InterruptedError} from './exit-codes';
import {eventLine, progressLine, resultLine} from './format';
import type {CliIo} from './io';

export interface FollowJobOptions {
  /** Print events (logs -f, submit --follow) or only wait (submit --wait). */
  events: boolean;
  afterSeq?: number;
  signal: AbortSignal;
  /** How often the progress line is refreshed. Default 1000 ms; without a terminal a line every 10 refreshes. */
  progressEveryMs?: number;
}

/** Follows until the job ends; returns its final view (throws InterruptedError on Ctrl-C). */
export async function followJob(client: ByolClient, id: string, io: CliIo, o: FollowJobOptions): Promise<JobView> {
  let shown = false; // a progress line is on screen (terminal only)
  const clear = () => {
    if (shown) io.out('\r\x1b[2K');
    shown = false;
  };
  let ticks = 0;
  const every = o.progressEveryMs ?? 1000;
  const refresh = async () => {
    const job = await client.jobs.get(id).catch(() => undefined);
    if (!job || TERMINAL_STATES.includes(job.state)) return;
    ticks += 1;
    if (io.isTTY) {
      clear();
      io.out(progressLine(job));
      shown = true;
    } else if (ticks % 10 === 1) {
      io.out(`${progressLine(job)}\n`);
    }
  };
  const timer = setInterval(() => void refresh(), every);
  try {
    for await (const item of client.jobs.follow(id, {afterSeq: o.afterSeq, signal: o.signal})) {
      if (item.kind === 'end') break;
      if (o.events) {
        clear();
        io.out(`${eventLine(item.event)}\n`);
      }
    }
  } catch (err) {
    if (o.signal.aborted) throw new InterruptedError();
    throw err;
  } finally {
    clearInterval(timer);
    clear();
  }
  const final = await client.jobs.get(id);
  io.out(`${resultLine(final)}\n`);
  return final;
}
