/** GET /v1/jobs/{id}/export: the online encoder of the job's latest good checkpoint, as a file download. */
import {spawn} from 'node:child_process';
import {createReadStream, mkdtempSync, rmSync, statSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import type {ServerResponse} from 'node:http';
import type {Logger} from 'pino';
import type {CoordinatorApi} from '../domain/coordinator-api';
import {ConflictError, NotFoundError} from '../domain/errors';
import {HttpError} from './http-errors';

export interface ExportOptions {
  pythonBin: string;
  timeoutMs: number;
  logger: Logger;
}

/** Runs `<python> -m byol_worker export` and resolves with its stderr's last line on failure. */
function runExport(opts: ExportOptions, checkpoint: string, out: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(opts.pythonBin, ['-m', 'byol_worker', 'export', '--checkpoint', checkpoint, '--out', out], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8192)));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new HttpError(500, 'export_failed', `cannot run ${opts.pythonBin}: ${err.message}; set the server's python (--python / BYOL_PYTHON)`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve();
      const last = stderr.trim().split('\n').pop() ?? '';
      reject(new HttpError(500, 'export_failed', `export of ${checkpoint} failed (${signal ?? `exit ${code}`}): ${last}`));
    });
  });
}

export async function exportEncoder(api: CoordinatorApi, id: string, res: ServerResponse, opts: ExportOptions): Promise<void> {
  if (!api.getJob(id)) throw new NotFoundError('job', id);
  const good = api.checkpoints(id).filter((c) => c.state === 'ok');
  if (good.length === 0) throw new ConflictError(`job ${id} has no good checkpoint yet; wait for one (byolctl checkpoints ${id})`);
  const latest = good.reduce((a, b) => (b.step > a.step ? b : a));
  const dir = mkdtempSync(join(tmpdir(), 'byol-export-'));
  const out = join(dir, 'encoder.pt');
  try {
    await runExport(opts, latest.path, out);
    const size = statSync(out).size;
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': String(size),
      'content-disposition': `attachment; filename="${id}-step-${latest.step}-encoder.pt"`,
      'x-byol-step': String(latest.step),
    });
    await new Promise<void>((resolve, reject) => {
      const stream = createReadStream(out);
      stream.on('error', reject);
      res.on('close', resolve);
      stream.pipe(res);
    });
    opts.logger.info({jobId: id, step: latest.step, bytes: size}, 'encoder exported');
  } finally {
    rmSync(dir, {recursive: true, force: true});
  }
}
