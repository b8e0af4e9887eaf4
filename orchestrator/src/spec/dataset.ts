/**
 * Training data on disk: layout checks and the sample count N (docs/internals.md "Schedule numbers").
 * Mirrors worker-py/byol_worker/data/layout.py (npy_split_size, image_folder_classes) and its messages.
 */
import {closeSync, openSync, readSync, readdirSync, statSync} from 'node:fs';
import {join} from 'node:path';
import {SpecError} from '../domain/errors';

const IMAGE_EXT = /\.(jpg|jpeg|png)$/i;

/** How to get data, shown with every missing-data error (same text as the Python side). */
export const CONVERT_HINT =
  'for CIFAR run `python -m byol_worker convert-cifar --archive cifar-10-python.tar.gz --out DIR`; ' +
  'an npy folder holds train_images.npy (uint8 N,H,W,3), train_labels.npy (int64 N) and test_*.npy for eval';

/** Shape and dtype descr of a .npy file, from its header only. */
export function npyHeader(file: string): {shape: number[]; descr: string} {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(12);
    if (readSync(fd, head, 0, 12, 0) < 10 || head.toString('latin1', 0, 6) !== '\x93NUMPY') {
      throw new Error('bad magic, not a .npy file');
    }
    const lenBytes = head[6] === 1 ? 2 : 4;
    const headerLen = lenBytes === 2 ? head.readUInt16LE(8) : head.readUInt32LE(8);
    if (headerLen > 1 << 20) throw new Error('header too large');
    const header = Buffer.alloc(headerLen);
    readSync(fd, header, 0, headerLen, 8 + lenBytes);
    const text = header.toString('latin1');
    const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(text);
    const descr = /'descr'\s*:\s*'([^']*)'/.exec(text);
    if (!shape || !descr) throw new Error('header has no shape or descr');
    return {
      shape: shape[1].split(',').map((s) => s.trim()).filter((s) => s.length > 0).map((s) => Number.parseInt(s, 10)),
      descr: descr[1],
    };
  } finally {
    closeSync(fd);
  }
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** Checks `<prefix>_images.npy` and `<prefix>_labels.npy` in `folder`; returns N or throws naming `field`. */
export function npySplitSize(folder: string, prefix: 'train' | 'test', field: string): number {
  const img = join(folder, `${prefix}_images.npy`);
  const lab = join(folder, `${prefix}_labels.npy`);
  for (const f of [img, lab]) {
    if (!isFile(f)) throw new SpecError([{path: field, message: `${f} not found; ${CONVERT_HINT}`}]);
  }
  let i: {shape: number[]; descr: string};
  let l: {shape: number[]; descr: string};
  try {
    i = npyHeader(img);
    l = npyHeader(lab);
  } catch (err) {
    throw new SpecError([{path: field, message: `${img} or ${lab} is not a readable .npy file (${(err as Error).message})`}]);
  }
  if (!/^[|<>=]?u1$/.test(i.descr) || i.shape.length !== 4 || i.shape[3] !== 3) {
    throw new SpecError([{path: field, message: `${img} must be uint8 of shape (N, H, W, 3), found ${i.descr} (${i.shape.join(', ')})`}]);
  }
  if (l.shape.length !== 1 || l.shape[0] !== i.shape[0] || !/^[|<>=]?[iu]\d$/.test(l.descr)) {
    throw new SpecError([{path: field, message: `${lab} must be integer labels of shape (${i.shape[0]},), found ${l.descr} (${l.shape.join(', ')})`}]);
  }
  return i.shape[0];
}

/** Image files per class subfolder of an image-folder tree; throws naming `field` when unusable. */
export function imageFolderCount(folder: string, field: string): number {
  let entries;
  try {
    if (!statSync(folder).isDirectory()) throw new Error('not a folder');
    entries = readdirSync(folder, {withFileTypes: true});
  } catch (err) {
    throw new SpecError([{path: field, message: unreadable(folder, err)}]);
  }
  let n = 0;
  for (const ent of entries) {
    if (!ent.isDirectory()) continue;
    const sub = join(folder, ent.name);
    try {
      n += readdirSync(sub).filter((f) => IMAGE_EXT.test(f)).length;
    } catch (err) {
      throw new SpecError([{path: field, message: unreadable(sub, err)}]);
    }
  }
  if (n === 0) throw new SpecError([{path: field, message: `${folder} has no class subfolders with .jpg/.jpeg/.png images`}]);
  return n;
}

/** "X is not a folder; ..." or, when it exists but cannot be listed, "X cannot be read (EACCES); ...". */
function unreadable(folder: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  const what = code && code !== 'ENOENT' && code !== 'ENOTDIR' ? `cannot be read (${code}); give the user byol runs as read access` : 'is not a folder';
  return `${folder} ${what}; image-folder data needs one subfolder per class holding .jpg/.jpeg/.png files`;
}
