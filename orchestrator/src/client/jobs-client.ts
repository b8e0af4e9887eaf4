/** `client.jobs`: submit, inspect, follow, cancel and export jobs over REST. */
import {createWriteStream} from 'node:fs';
import {rename, rm} from 'node:fs/promises';
import {Readable} from 'node:stream';
import {pipeline} from 'node:stream/promises';
import type {JobView} from '../domain/coordinator-api';
import type {CheckpointRecord, JobEvent, JobState, MetricPoint} from '../domain/types';
import type {Connection} from './connection';
import {ServerUnreachableError} from './errors';
import {readSse} from './sse-reader';

export interface FollowOptions {
  /** Events with seq above this; default 0 (everything). */
  afterSeq?: number;
  signal?: AbortSignal;
  /** First reconnect delay after a dropped stream, doubling to 5 s. Default 200 ms. */
  reconnectDelayMs?: number;
  /** Give up after this many failed reconnects in a row. Default 10. */
  maxReconnects?: number;
}

/** What `follow` yields: a job event, or the end of the stream with the job's final state. */
export type FollowItem = {kind: 'event'; event: JobEvent} | {kind: 'end'; state: JobState};

const enc = encodeURIComponent;

export class JobsClient {
  constructor(private readonly conn: Connection) {}

  /** Submits a job document (an object, sent as JSON) or YAML text. */
  submit(doc: unknown | {yaml: string}): Promise<JobView> {
    const yaml = typeof doc === 'object' && doc !== null && 'yaml' in doc && typeof (doc as any).yaml === 'string';
    return this.conn.json('POST', '/v1/jobs', yaml
      ? {body: (doc as {yaml: string}).yaml, contentType: 'application/yaml'}
      : {body: JSON.stringify(doc)});
  }

  get(id: string): Promise<JobView> {
    return this.conn.json('GET', `/v1/jobs/${enc(id)}`, {resource: {what: 'job', id}});
  }

  list(o: {states?: JobState[]; limit?: number} = {}): Promise<JobView[]> {
    const q = new URLSearchParams();
    if (o.states?.length) q.set('state', o.states.join(','));
    if (o.limit !== undefined) q.set('limit', String(o.limit));
    return this.conn.json('GET', `/v1/jobs${q.size ? `?${q}` : ''}`);
  }

  cancel(id: string): Promise<JobView> {
    return this.conn.json('DELETE', `/v1/jobs/${enc(id)}`, {resource: {what: 'job', id}});
  }

  metrics(id: string, o: {sinceStep?: number; limit?: number} = {}): Promise<MetricPoint[]> {
    const q = new URLSearchParams();
    if (o.sinceStep !== undefined) q.set('sinceStep', String(o.sinceStep));
    if (o.limit !== undefined) q.set('limit', String(o.limit));
    return this.conn.json('GET', `/v1/jobs/${enc(id)}/metrics${q.size ? `?${q}` : ''}`, {resource: {what: 'job', id}});
  }

  checkpoints(id: string): Promise<CheckpointRecord[]> {
    return this.conn.json('GET', `/v1/jobs/${enc(id)}/checkpoints`, {resource: {what: 'job', id}});
  }

  /** Stored events (no streaming). */
  events(id: string, o: {afterSeq?: number; limit?: number} = {}): Promise<JobEvent[]> {
    const q = new URLSearchParams({after: String(o.afterSeq ?? 0)});
    if (o.limit !== undefined) q.set('limit', String(o.limit));
    return this.conn.json('GET', `/v1/jobs/${enc(id)}/events?${q}`, {resource: {what: 'job', id}});
  }

  /**
   * Replays then follows a job's events over server-sent events until the job ends. A dropped stream
   * is reopened with Last-Event-ID (backoff 0.2 s doubling to 5 s), so no event is lost or repeated.
   */
  async *follow(id: string, o: FollowOptions = {}): AsyncGenerator<FollowItem> {
    let last = o.afterSeq ?? 0;
    let failures = 0;
    let delay = o.reconnectDelayMs ?? 200;
    for (;;) {
      try {
        const res = await this.conn.call('GET', `/v1/jobs/${enc(id)}/events`, {
          accept: 'text/event-stream', headers: {'last-event-id': String(last)}, streaming: true, signal: o.signal, resource: {what: 'job', id},
        });
        for await (const m of readSse(res.body!)) {
          failures = 0;
          delay = o.reconnectDelayMs ?? 200;
          if (m.event === 'end') {
            yield {kind: 'end', state: (JSON.parse(m.data) as {state: JobState}).state};
            return;
          }
          const ev = JSON.parse(m.data) as JobEvent;
          if (ev.seq <= last) continue;
          last = ev.seq;
          yield {kind: 'event', event: ev};
        }
      } catch (err) {
        // Only a lost connection is retried (fetch reports a body cut midway as TypeError "terminated");
        // an HTTP error from the server (not found, unauthorized, ...) is the answer, not a drop.
        const dropped = err instanceof ServerUnreachableError || (err as Error)?.name === 'TypeError';
        if (o.signal?.aborted || !dropped) throw err;
      }
      if (o.signal?.aborted) return;
      failures += 1;
      if (failures > (o.maxReconnects ?? 10)) throw new ServerUnreachableError(this.conn.server);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5000);
    }
  }

  /** Downloads the online encoder of the latest good checkpoint to `out` (written whole, then renamed). */
  async export(id: string, out: string, o: {signal?: AbortSignal} = {}): Promise<{path: string; bytes: number; step: number}> {
    const res = await this.conn.call('GET', `/v1/jobs/${enc(id)}/export`, {streaming: true, signal: o.signal, resource: {what: 'job', id}});
    const part = `${out}.part`;
    try {
      await pipeline(Readable.fromWeb(res.body! as any), createWriteStream(part));
      await rename(part, out);
    } catch (err) {
      await rm(part, {force: true});
      throw err;
    }
    return {path: out, bytes: Number(res.headers.get('content-length') ?? 0), step: Number(res.headers.get('x-byol-step') ?? -1)};
  }
}
