/**
 * The coordinator's import rules (docs/architecture.md §12, the style guide): no import cycles (type-only
 * imports count too), a pure domain/ that imports only itself, and protobuf only in transport/codec.ts.
 * Reads the import statements of orchestrator/src; the generated gen/ is left out.
 */
import {describe, expect, test} from '@jest/globals';
import {existsSync, readdirSync, readFileSync, statSync} from 'node:fs';
import {dirname, join, relative, resolve} from 'node:path';

const SRC = resolve(__dirname, '..', 'orchestrator', 'src');
const IMPORT = /(?:^|\n)\s*(?:import|export)\b[^'"]*?\bfrom\s+['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)|\brequire\(\s*['"]([^'"]+)['"]\s*\)/g;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, {withFileTypes: true}).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'gen' ? [] : sourceFiles(p);
    return p.endsWith('.ts') && !p.endsWith('.d.ts') ? [p] : [];
  });
}

/** The file a relative specifier names (x.ts or x/index.ts); null for a package or a file that is not TS. */
function resolveImport(from: string, spec: string): string | null {
  if (!spec.startsWith('.')) return null;
  const base = resolve(dirname(from), spec);
  return [`${base}.ts`, join(base, 'index.ts')].find((p) => existsSync(p) && statSync(p).isFile()) ?? null;
}

function importsOf(file: string): string[] {
  return [...readFileSync(file, 'utf8').matchAll(IMPORT)].map((m) => m[1] ?? m[2] ?? m[3]);
}

/** Every cycle found by a depth-first walk, each as its files in order (the first repeated at the end). */
function findCycles(graph: Map<string, string[]>): string[][] {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const cycles: string[][] = [];
  const visit = (u: string): void => {
    state.set(u, 'open');
    path.push(u);
    for (const v of graph.get(u) ?? []) {
      if (state.get(v) === 'open') cycles.push([...path.slice(path.indexOf(v)), v]);
      else if (!state.has(v)) visit(v);
    }
    path.pop();
    state.set(u, 'done');
  };
  for (const u of graph.keys()) if (!state.has(u)) visit(u);
  return cycles;
}

const files = sourceFiles(SRC);
const rel = (p: string) => relative(SRC, p);

describe('import rules of orchestrator/src', () => {
  test('the cycle finder sees a cycle and a clean graph', () => {
    expect(findCycles(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]]))).toEqual([['a', 'b', 'c', 'a']]);
    expect(findCycles(new Map([['a', ['b', 'c']], ['b', ['c']], ['c', []]]))).toEqual([]);
  });

  test('no import cycles', () => {
    expect(files.length).toBeGreaterThan(50);
    const graph = new Map(files.map((f) => [f, importsOf(f).map((s) => resolveImport(f, s)).filter((p): p is string => p !== null)]));
    expect(findCycles(graph).map((c) => c.map(rel).join(' -> '))).toEqual([]);
  });

  test('domain/ imports only domain/', () => {
    const outside = files.filter((f) => rel(f).startsWith('domain/')).flatMap((f) =>
      importsOf(f).filter((s) => !resolveImport(f, s)?.startsWith(join(SRC, 'domain'))).map((s) => `${rel(f)}: ${s}`));
    expect(outside).toEqual([]);
  });

  test('protobuf (gen/, protobufjs) only in transport/codec.ts', () => {
    const users = files.filter((f) => rel(f) !== join('transport', 'codec.ts')).flatMap((f) =>
      importsOf(f).filter((s) => /(^|\/)gen(\/|$)|^protobufjs/.test(s)).map((s) => `${rel(f)}: ${s}`));
    expect(users).toEqual([]);
  });
});
