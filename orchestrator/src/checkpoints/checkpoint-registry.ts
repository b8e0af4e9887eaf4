/**
 * Registers checkpoints the trainers report and applies retention. A folder is deleted only
 * after a newer checkpoint is recorded in the store, so there is always one to resume from.
 */
import {rmSync} from 'node:fs';
import {isAbsolute, relative, resolve} from 'node:path';
import type {Logger} from 'pino';
import type {CheckpointRecord} from '../domain/types';
import type {JobStore} from '../domain/store';
import {stepsToDelete} from './retention';

export interface CheckpointReportData {
  jobId: string; step: number; ok: boolean; path: string; bytes: number; sha256: string; error: string;
}

export class CheckpointRegistry {
  private readonly log: Logger;

  constructor(private readonly store: JobStore, logger: Logger, private readonly now: () => number = Date.now) {
    this.log = logger.child({module: 'checkpoints'});
  }

  /** Records an ok report and deletes what retention drops; returns the record (null when !ok). */
  record(r: CheckpointReportData, checkpointDir: string, keepLast: number, keepEvery: number): CheckpointRecord | null {
    if (!r.ok) return null;
    const rec: CheckpointRecord = {
      jobId: r.jobId, step: r.step, path: r.path, bytes: r.bytes, sha256: r.sha256, state: 'ok', createdAtMs: this.now(),
    };
    const existing = this.store.listCheckpoints(r.jobId).find((c) => c.step === r.step);
    const same = existing && existing.state === 'ok' && existing.path === r.path && existing.sha256 === r.sha256 && existing.bytes === r.bytes;
    if (same) return existing; // the same report again
    // New, or saved again at that step (after it was marked bad, or by a later generation that
    // redid the step): the folder now holds these files, so its sha256, size and time are these.
    this.store.addCheckpoint(rec);
    const ok = this.store.listCheckpoints(r.jobId, {states: ['ok']});
    for (const step of stepsToDelete(ok.map((c) => c.step), keepLast, keepEvery)) {
      const c = ok.find((x) => x.step === step)!;
      this.deleteFolder(c.path, checkpointDir);
      this.store.setCheckpointState(r.jobId, step, 'deleted');
    }
    return rec;
  }

  markBad(jobId: string, step: number): void {
    this.store.setCheckpointState(jobId, step, 'bad');
  }

  /** The newest good checkpoint at or below `maxStep` (default: any), or null for a fresh start. */
  latestGood(jobId: string, maxStep = Infinity): CheckpointRecord | null {
    const ok = this.store.listCheckpoints(jobId, {states: ['ok']}).filter((c) => c.step <= maxStep);
    return ok.length > 0 ? ok[ok.length - 1] : null;
  }

  /** Resolves a reported path (absolute, or relative to the job's checkpoint root). */
  findByPath(jobId: string, path: string, checkpointDir: string): CheckpointRecord | undefined {
    const want = resolve(checkpointDir, path);
    return this.store.listCheckpoints(jobId).find((c) => resolve(checkpointDir, c.path) === want);
  }

  private deleteFolder(path: string, checkpointDir: string): void {
    const abs = resolve(checkpointDir, path);
    const rel = relative(resolve(checkpointDir), abs);
    if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) {
      this.log.warn({path, checkpointDir}, 'not deleting a checkpoint outside the job checkpoint folder');
      return;
    }
    try {
      rmSync(abs, {recursive: true, force: true});
    } catch (err) {
      this.log.warn({err, path: abs}, 'could not delete an old checkpoint; remove it by hand to free disk');
    }
  }
}
