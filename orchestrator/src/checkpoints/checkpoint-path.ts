/**
 * Where a reported checkpoint may be: `<job checkpoint dir>/step-<k>` for its own step k, after
 * resolving symlinks (realpath). Retention deletes what the registry holds, so a path that escapes
 * (/etc, ../../.., a symlink out) must never get in. The coordinator may not see the folder yet (or
 * at all, without a shared file system): then the deepest part that exists is resolved and the rest
 * is taken as written.
 */
import {realpathSync} from 'node:fs';
import {basename, dirname, join, resolve} from 'node:path';

const STEP_DIR = /^step-(\d{1,19})$/;

/** The deepest existing ancestor resolved with realpath, then the remaining components. */
export function resolveReal(path: string): string {
  const abs = resolve(path);
  const rest: string[] = [];
  let cur = abs;
  for (;;) {
    try {
      return join(realpathSync(cur), ...rest.reverse());
    } catch {
      const parent = dirname(cur);
      if (parent === cur) return abs;
      rest.push(basename(cur));
      cur = parent;
    }
  }
}

/** Null when `path` is the step-<step> folder right inside `jobDir`; otherwise why not. */
export function checkpointPathProblem(path: string, jobDir: string, step: number): string | null {
  if (!path) return 'the path is empty';
  if (path.length > 4096 || path.includes('\0')) return 'the path is not a plausible file name';
  const real = resolveReal(resolve(jobDir, path));
  const root = resolveReal(jobDir);
  if (dirname(real) !== root) return `it resolves to ${real}, not to a folder directly inside ${root}`;
  const m = STEP_DIR.exec(basename(real));
  if (!m || Number(m[1]) !== step) return `its folder ${basename(real)} is not step-${String(step).padStart(9, '0')}`;
  return null;
}
