/**
 * Step 3 of spec resolution: the `rules` of contract/presets.json (defaults filled from other fields,
 * bounds between fields, required fields, paths), applied to a merged spec. The rules are data; this is
 * their interpreter, the same as worker-py/byol_worker/spec_rules.py (test/vectors/spec-resolution.json).
 */
import {resolve as resolvePath} from 'node:path';
import presets from '../../../contract/presets.json';
import type {FieldIssue} from '../domain/errors';
import {fmt} from './validate';

type Obj = Record<string, any>;

export interface SpecRules {
  defaultFrom: Record<string, string>;
  atMost: Record<string, string>;
  requiredUnless: Record<string, {field: string; equals: unknown}>;
  paths: string[];
  maxTotalSteps: number;
}

export const RULES: SpecRules = presets.rules as SpecRules;

function get(spec: Obj, path: string): unknown {
  return path.split('.').reduce<any>((o, k) => (o !== null && typeof o === 'object' ? o[k] : undefined), spec);
}

function set(spec: Obj, path: string, value: unknown): void {
  const keys = path.split('.');
  const last = keys.pop()!;
  let o = spec;
  for (const k of keys) o = (o[k] ??= {});
  o[last] = value;
}

/** Applies the rules to `spec` (the merged `spec` section) in place; returns the issues, in rule order. */
export function applyRules(spec: Obj, baseDir: string, rules: SpecRules = RULES): FieldIssue[] {
  const issues: FieldIssue[] = [];
  for (const [target, source] of Object.entries(rules.defaultFrom)) {
    if (get(spec, target) === undefined && get(spec, source) !== undefined) set(spec, target, structuredClone(get(spec, source)));
  }
  for (const [field, bound] of Object.entries(rules.atMost)) {
    const v = get(spec, field) as number | undefined;
    const max = get(spec, bound) as number | undefined;
    if (v !== undefined && max !== undefined && v > max) {
      issues.push({path: `spec.${field}`, message: `must be <= spec.${bound} (${max})`});
    }
  }
  for (const [field, unless] of Object.entries(rules.requiredUnless)) {
    const other = get(spec, unless.field);
    if (get(spec, field) === undefined && other !== unless.equals) {
      issues.push({path: `spec.${field}`, message: `required when spec.${unless.field} is ${fmt(other)}`});
    }
  }
  for (const field of rules.paths) {
    const v = get(spec, field);
    if (typeof v === 'string') set(spec, field, resolvePath(baseDir, v));
  }
  return issues;
}
