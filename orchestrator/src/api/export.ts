/**
 * GET /v1/jobs/{id}/export: the online encoder of the job's latest good checkpoint, as a file download.
 * A few at a time (each runs Python and torch), from a hard-linked copy of the checkpoint so that
 * retention deleting the folder meanwhile cannot pull files from under the export.
 */
import {spawn} from 'node:child_process';
import {createReadStream, mkdtempSync, rmSync, statSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import type {ServerResponse} from 'node:http';
import type {Logger} from 'pino';
import type {CoordinatorApi} from '../domain/coordinator-api';
import type {CheckpointRecord} from '../domain/types';
import {ConflictError, NotFoundError} from '../domain/errors';
import {pinCheckpoint} from './checkpoint-pin';
import {HttpError} from './http-errors';

export interface ExportOptions {
  pythonBin: string;
  timeoutMs: number;
  logger: Logger;
  /** Exports running now; shared by every request of one server. */
  running: {count: number; max: number};
  /** The idle timeout restored on the socket once the file streams. */
  idleTimeoutMs: number;
}

/** Runs `<python> -m byol_worker export`; rejects with its stderr's last line; killed if the client leaves. */
function runExport(opts: ExportOptions, checkpoint: string, out: string, res: ServerResponse): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(opts.pythonBin, ['-m', 'byol_worker', 'export', '--checkpoint', checkpoint, '--out', out], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8192)));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    const onGone = () => child.kill('SIGKILL'); // nobody is waiting for the file any more
    res.once('close', onGone);
    child.on('error', (err) => {
      clearTimeout(timer);
      res.off('close', onGone);
      reject(new HttpError(500, 'export_failed', `cannot run ${opts.pythonBin}: ${err.message}; set the server's python (--python / BYOL_PYTHON)`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      res.off('close', onGone);
      if (code === 0) return resolve();
      const last = stderr.trim().split('\n').pop() ?? '';
      reject(new HttpError(500, 'export_failed', `export of ${checkpoint} failed (${signal ?? `exit ${code}`}): ${last}`));
    });
  });
}

function latestGood(api: CoordinatorApi, id: string): CheckpointRecord {
  const good = api.checkpoints(id).filter((c) => c.state === 'ok');
  if (good.length === 0) throw new ConflictError(`job ${id} has no good checkpoint yet; wait for one (byolctl checkpoints ${id})`);
  return good.reduce((a, b) => (b.step > a.step ? b : a));
}

export async function exportEncoder(api: CoordinatorApi, id: string, res: ServerResponse, opts: ExportOptions): Promise<void> {
  if (!api.getJob(id)) throw new NotFoundError('job', id);
  if (opts.running.count >= opts.running.max) {
    throw new HttpError(429, 'too_many_exports', `${opts.running.count} exports are running, the most this server runs at once; retry when one finishes`);
  }
  opts.running.count += 1;
  const dir = mkdtempSync(join(tmpdir(), 'byol-export-'));
  let pinned: {path: string; step: number; release: () => void} | undefined;
  try {
    pinned = pinCheckpoint(() => latestGood(api, id), opts.logger);
    const out = join(dir, 'encoder.pt');
    res.socket?.setTimeout(0); // the client waits quietly while Python works
    await runExport(opts, pinned.path, out, res);
    res.socket?.setTimeout(opts.idleTimeoutMs);
    const size = statSync(out).size;
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': String(size),
      'content-disposition': `attachment; filename="${id}-step-${pinned.step}-encoder.pt"`,
      'x-byol-step': String(pinned.step),
    });
    await new Promise<void>((resolve, reject) => {
      const stream = createReadStream(out);
      stream.on('error', reject);
      res.on('close', resolve);
      stream.pipe(res);
    });
    opts.logger.info({jobId: id, step: pinned.step, bytes: size}, 'encoder exported');
  } finally {
    opts.running.count -= 1;
    pinned?.release();
    rmSync(dir, {recursive: true, force: true});
  }
}
