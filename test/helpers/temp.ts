import {mkdtempSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join, resolve} from 'node:path';

/** A fresh temp folder per test; remove it with the returned cleanup. */
export function tempDir(prefix = 'byol-test-'): {path: string; cleanup: () => void} {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return {path, cleanup: () => rmSync(path, {recursive: true, force: true})};
}

export const REPO_ROOT = resolve(__dirname, '..', '..');
export const PYTHON_BIN = join(REPO_ROOT, '.venv', 'bin', 'python');

/** The shared CIFAR-10 JPEG sample: BYOL_SHARED_DATA, else <repo>/../shared/data/cifar10-jpeg. */
export function sharedCifarDir(): string {
  return process.env.BYOL_SHARED_DATA ?? resolve(REPO_ROOT, '..', 'shared', 'data', 'cifar10-jpeg');
}
