/**
 * Pins a checkpoint for a reader (export) without asking retention: every file is hard-linked into a
 * private folder beside it (same filesystem, no bytes copied). Retention may then delete the original;
 * the linked files live on until the reader releases them. The reader still verifies the sha256
 * manifest, which catches a folder caught half-deleted.
 */
import {linkSync, mkdirSync, mkdtempSync, readdirSync, rmSync} from 'node:fs';
import {basename, dirname, join, resolve} from 'node:path';
import type {Logger} from 'pino';
import type {CheckpointRecord} from '../domain/types';
import {ConflictError} from '../domain/errors';

function linkTree(src: string, dst: string): void {
  for (const ent of readdirSync(src, {withFileTypes: true})) {
    const from = join(src, ent.name);
    const to = join(dst, ent.name);
    if (ent.isDirectory()) {
      mkdirSync(to, {mode: 0o700});
      linkTree(from, to);
    } else if (ent.isFile()) {
      linkSync(from, to);
    }
  }
}

const GONE = new Set(['ENOENT', 'ENOTDIR']);

/**
 * Links the checkpoint `pick()` names (asked again when retention removed it meanwhile). Where links
 * cannot be made (another filesystem, read-only), reads the original in place, as before.
 */
export function pinCheckpoint(pick: () => CheckpointRecord, log: Logger): {path: string; step: number; release: () => void} {
  for (let attempt = 0; attempt < 3; attempt++) {
    const ck = pick();
    const src = resolve(ck.path);
    let dir: string;
    try {
      dir = mkdtempSync(join(dirname(src), `.export-${basename(src)}-`));
    } catch (err) {
      log.debug({err, path: src}, 'cannot pin the checkpoint with hard links; exporting it in place');
      return {path: src, step: ck.step, release: () => undefined};
    }
    const release = () => rmSync(dir, {recursive: true, force: true});
    try {
      linkTree(src, dir);
      return {path: dir, step: ck.step, release};
    } catch (err) {
      release();
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (!GONE.has(code)) {
        log.debug({err, path: src}, 'cannot pin the checkpoint with hard links; exporting it in place');
        return {path: src, step: ck.step, release: () => undefined};
      }
      log.info({path: src, step: ck.step}, 'checkpoint removed by retention while pinning it for export; taking the newer one');
    }
  }
  throw new ConflictError('the job\'s checkpoints kept changing while pinning one for export; retry');
}
