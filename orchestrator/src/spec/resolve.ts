/**
 * Spec resolution (docs/internals.md "Spec resolution"): validate, merge presets, apply the contract's
 * rules, check data. worker-py/byol_worker/spec.py does the same; test/vectors/spec-resolution.json holds both to it.
 */
import {existsSync, realpathSync} from 'node:fs';
import {isAbsolute, relative, resolve as resolvePath} from 'node:path';
import {SpecError} from '../domain/errors';
import type {JobSpec} from '../domain/types';
import {imageFolderCount, npySplitSize} from './dataset';
import {mergeSpec} from './merge';
import {applyRules} from './rules';
import {schemaIssues} from './validate';

export interface ResolveOptions {
  /** Folder that relative data paths resolve against (the spec file's folder; the data root over REST). Default: cwd. */
  baseDir?: string;
  /** When given, data paths must lie under one of these folders (docs/architecture.md §11). */
  dataRoots?: string[];
  /** Names the source in errors (a file path). */
  file?: string;
}

function real(p: string): string {
  return existsSync(p) ? realpathSync(p) : resolvePath(p);
}

/** True when `child` is `root` or inside it, after following symlinks (no escape through a link). */
export function isUnder(child: string, root: string): boolean {
  const rel = relative(real(root), real(child));
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** Throws SpecError unless the data (and, with kNN on, the eval data) exist with the right layout. */
export function checkDataLayout(spec: Record<string, any>): void {
  const data = spec.data;
  const knn = spec.eval?.knn?.enabled === true;
  if (data.format === 'npy') {
    npySplitSize(data.path, 'train', 'spec.data.path');
    if (knn) npySplitSize(data.evalPath, 'test', 'spec.data.evalPath');
  } else if (data.format === 'image-folder') {
    imageFolderCount(data.path, 'spec.data.path');
    if (knn) imageFolderCount(data.evalPath, 'spec.data.evalPath');
  }
}

/** Validates and resolves a user document into a JobSpec; throws SpecError (nothing else is touched). */
export function resolveSpec(doc: unknown, opts: ResolveOptions = {}): JobSpec {
  try {
    return resolveInner(doc, opts);
  } catch (err) {
    if (err instanceof SpecError && opts.file && !err.file) throw new SpecError(err.issues, opts.file);
    throw err;
  }
}

function resolveInner(doc: unknown, opts: ResolveOptions): JobSpec {
  const schemaProblems = schemaIssues(doc);
  if (schemaProblems.length > 0) throw new SpecError(schemaProblems);
  const user = doc as JobSpec;
  const spec = mergeSpec(user.spec);
  const data = spec.data as Record<string, any>;
  const issues = applyRules(spec, opts.baseDir ?? process.cwd());
  // The data roots are the coordinator's policy (REST), not a rule of the spec: TypeScript only.
  const roots = opts.dataRoots ?? [];
  for (const key of ['path', 'evalPath']) {
    if (roots.length > 0 && data[key] !== undefined && !roots.some((r) => isUnder(data[key], r))) {
      issues.push({path: `spec.data.${key}`, message: `${data[key]} is outside the allowed data roots (${roots.join(', ')})`});
    }
  }
  if (issues.length > 0) throw new SpecError(issues);
  checkDataLayout(spec);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(user)) if (k !== 'spec') out[k] = structuredClone(v);
  out.spec = spec;
  return out as unknown as JobSpec;
}

/** N, the number of training samples (npy: first dim of train_images.npy; image files; synthetic numSamples). */
export function datasetSize(spec: JobSpec): number {
  const data = spec.spec.data as Record<string, any>;
  if (data.format === 'synthetic') return data.numSamples;
  if (data.format === 'npy') return npySplitSize(data.path, 'train', 'spec.data.path');
  return imageFolderCount(data.path, 'spec.data.path');
}
