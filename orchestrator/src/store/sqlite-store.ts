/** JobStore on better-sqlite3 (docs/architecture.md §2: the coordinator's state lives here so it can restart). */
import Database from 'better-sqlite3';
import {chmodSync, closeSync, mkdirSync, openSync} from 'node:fs';
import {dirname} from 'node:path';
import {NotFoundError} from '../domain/errors';
import type {JobStore} from '../domain/store';
import type {CheckpointRecord, CheckpointState, Generation, Job, JobEvent, JobState, MetricPoint, RankSeries} from '../domain/types';
import {MIGRATIONS} from './migrations';

type Row = Record<string, any>;

function jobOf(r: Row): Job {
  return {
    id: r.id, name: r.name, priority: r.priority, state: r.state as JobState,
    spec: JSON.parse(r.spec), specHash: r.spec_hash, schedule: JSON.parse(r.schedule),
    submittedAtMs: r.submitted_at_ms, startedAtMs: r.started_at_ms, finishedAtMs: r.finished_at_ms,
    step: r.step, totalSteps: r.total_steps, generation: r.generation, message: r.message,
    result: r.result === null ? null : JSON.parse(r.result),
  };
}

function jobRow(j: Job): Row {
  return {
    id: j.id, name: j.name, priority: j.priority, state: j.state, spec: JSON.stringify(j.spec),
    spec_hash: j.specHash, schedule: JSON.stringify(j.schedule), submitted_at_ms: j.submittedAtMs,
    started_at_ms: j.startedAtMs, finished_at_ms: j.finishedAtMs, step: j.step, total_steps: j.totalSteps,
    generation: j.generation, message: j.message, result: j.result === null ? null : JSON.stringify(j.result),
  };
}

function checkpointOf(r: Row): CheckpointRecord {
  return {
    jobId: r.job_id, step: r.step, path: r.path, bytes: r.bytes, sha256: r.sha256,
    state: r.state as CheckpointState, createdAtMs: r.created_at_ms,
  };
}

function eventOf(r: Row): JobEvent {
  const ev: JobEvent = {seq: r.seq, jobId: r.job_id, tMs: r.t_ms, level: r.level, type: r.type, message: r.message};
  if (r.data !== null) ev.data = JSON.parse(r.data);
  return ev;
}

/** Applies pending migrations inside one transaction each; refuses a store newer than this code. */
export function migrate(db: Database.Database): void {
  const version = db.pragma('user_version', {simple: true}) as number;
  if (version > MIGRATIONS.length) {
    throw new Error(`store schema version ${version} is newer than this coordinator (${MIGRATIONS.length}); upgrade byol`);
  }
  for (let v = version; v < MIGRATIONS.length; v += 1) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}

/**
 * The store holds every spec, path and result: its folder is created 0700 and the file 0600 (SQLite
 * gives its -wal and -shm files the same mode). An existing folder is left as the user made it.
 */
function createPrivate(path: string): void {
  mkdirSync(dirname(path), {recursive: true, mode: 0o700});
  closeSync(openSync(path, 'a', 0o600));
  try {
    chmodSync(path, 0o600); // a store made by an older version was world-readable
  } catch {
    // not ours to change (another owner); SQLite still opens it
  }
}

export class SqliteStore implements JobStore {
  private readonly db: Database.Database;

  constructor(readonly path: string) {
    if (path !== ':memory:') createPrivate(path);
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL'); // WAL + NORMAL is durable across process crashes
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    migrate(this.db);
  }

  /** The schema version (PRAGMA user_version). */
  schemaVersion(): number {
    return this.db.pragma('user_version', {simple: true}) as number;
  }

  insertJob(job: Job): void {
    this.db.prepare(
      `INSERT INTO jobs (id, name, priority, state, spec, spec_hash, schedule, submitted_at_ms, started_at_ms,
         finished_at_ms, step, total_steps, generation, message, result)
       VALUES (@id, @name, @priority, @state, @spec, @spec_hash, @schedule, @submitted_at_ms, @started_at_ms,
         @finished_at_ms, @step, @total_steps, @generation, @message, @result)`,
    ).run(jobRow(job));
  }

  getJob(id: string): Job | undefined {
    const r = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as Row | undefined;
    return r ? jobOf(r) : undefined;
  }

  listJobs(filter: {states?: JobState[]; limit?: number} = {}): Job[] {
    const states = filter.states ?? [];
    const where = states.length > 0 ? `WHERE state IN (${states.map(() => '?').join(',')})` : '';
    const limit = filter.limit !== undefined ? 'LIMIT ?' : '';
    const args: unknown[] = [...states];
    if (filter.limit !== undefined) args.push(filter.limit);
    const rows = this.db.prepare(`SELECT * FROM jobs ${where} ORDER BY submitted_at_ms DESC, rowid DESC ${limit}`).all(...args);
    return (rows as Row[]).map(jobOf);
  }

  updateJob(id: string, patch: Partial<Omit<Job, 'id' | 'spec' | 'specHash' | 'submittedAtMs'>>): Job {
    return this.db.transaction(() => {
      const current = this.getJob(id);
      if (!current) throw new NotFoundError('job', id);
      const next: Job = {...current, ...patch, id, spec: current.spec, specHash: current.specHash, submittedAtMs: current.submittedAtMs};
      this.db.prepare(
        `UPDATE jobs SET name=@name, priority=@priority, state=@state, schedule=@schedule, started_at_ms=@started_at_ms,
           finished_at_ms=@finished_at_ms, step=@step, total_steps=@total_steps, generation=@generation,
           message=@message, result=@result WHERE id=@id`,
      ).run(jobRow(next));
      return next;
    })();
  }

  upsertGeneration(jobId: string, gen: Generation): void {
    this.db.prepare('INSERT OR REPLACE INTO generations (job_id, generation, data) VALUES (?, ?, ?)')
      .run(jobId, gen.generation, JSON.stringify(gen));
  }

  listGenerations(jobId: string): Generation[] {
    const rows = this.db.prepare('SELECT data FROM generations WHERE job_id = ? ORDER BY generation').all(jobId) as Row[];
    return rows.map((r) => JSON.parse(r.data));
  }

  addCheckpoint(rec: CheckpointRecord): void {
    this.db.prepare(
      `INSERT OR REPLACE INTO checkpoints (job_id, step, path, bytes, sha256, state, created_at_ms)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ).run(rec.jobId, rec.step, rec.path, rec.bytes, rec.sha256, rec.state, rec.createdAtMs);
  }

  setCheckpointState(jobId: string, step: number, state: CheckpointState): void {
    const res = this.db.prepare('UPDATE checkpoints SET state = ? WHERE job_id = ? AND step = ?').run(state, jobId, step);
    if (res.changes === 0) throw new NotFoundError('checkpoint', `${jobId}@${step}`);
  }

  listCheckpoints(jobId: string, opts: {states?: CheckpointState[]} = {}): CheckpointRecord[] {
    const states = opts.states ?? [];
    const where = states.length > 0 ? `AND state IN (${states.map(() => '?').join(',')})` : '';
    const rows = this.db.prepare(`SELECT * FROM checkpoints WHERE job_id = ? ${where} ORDER BY step`).all(jobId, ...states);
    return (rows as Row[]).map(checkpointOf);
  }

  appendMetrics(jobId: string, points: MetricPoint[], maxPoints: number): void {
    const put = this.db.prepare('INSERT OR REPLACE INTO metrics (job_id, step, data) VALUES (?, ?, ?)');
    const putRanks = this.db.prepare('INSERT OR REPLACE INTO rank_metrics (job_id, step, data) VALUES (?, ?, ?)');
    const trim = (table: string) => this.db.prepare(
      `DELETE FROM ${table} WHERE job_id = ? AND step < (
         SELECT step FROM metrics WHERE job_id = ? ORDER BY step DESC LIMIT 1 OFFSET ?)`,
    );
    this.db.transaction(() => {
      for (const {perRank, ...p} of points) {
        put.run(jobId, p.step, JSON.stringify(p));
        if (perRank) putRanks.run(jobId, p.step, JSON.stringify(perRank));
      }
      if (maxPoints > 0) {
        trim('rank_metrics').run(jobId, jobId, maxPoints - 1);
        trim('metrics').run(jobId, jobId, maxPoints - 1);
      }
    })();
  }

  listMetrics(jobId: string, opts: {sinceStep?: number; limit?: number} = {}): MetricPoint[] {
    const rows = this.db.prepare('SELECT data FROM metrics WHERE job_id = ? AND step >= ? ORDER BY step LIMIT ?')
      .all(jobId, opts.sinceStep ?? 0, opts.limit ?? -1) as Row[];
    return rows.map((r) => JSON.parse(r.data));
  }

  listRankMetrics(jobId: string, steps: number[]): Map<number, RankSeries> {
    const get = this.db.prepare('SELECT data FROM rank_metrics WHERE job_id = ? AND step = ?');
    const out = new Map<number, RankSeries>();
    for (const step of steps) {
      const r = get.get(jobId, step) as Row | undefined;
      if (r) out.set(step, JSON.parse(r.data));
    }
    return out;
  }

  appendEvent(ev: Omit<JobEvent, 'seq'>): JobEvent {
    const res = this.db.prepare('INSERT INTO events (job_id, t_ms, level, type, message, data) VALUES (?, ?, ?, ?, ?, ?)')
      .run(ev.jobId, ev.tMs, ev.level, ev.type, ev.message, ev.data === undefined ? null : JSON.stringify(ev.data));
    return {...ev, seq: Number(res.lastInsertRowid)};
  }

  listEvents(jobId: string, opts: {afterSeq?: number; limit?: number} = {}): JobEvent[] {
    const rows = this.db.prepare('SELECT * FROM events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?')
      .all(jobId, opts.afterSeq ?? 0, opts.limit ?? -1) as Row[];
    return rows.map(eventOf);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/** Opens (creating folders and schema as needed) the store at `path`. */
export function openStore(path: string): SqliteStore {
  return new SqliteStore(path);
}
