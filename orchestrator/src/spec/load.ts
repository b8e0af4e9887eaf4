/** Reading a job spec file (YAML or JSON) with a size bound and errors that name the file and line. */
import {readFileSync, statSync} from 'node:fs';
import {parseDocument} from 'yaml';
import {SpecError} from '../domain/errors';
import {finiteIssues} from './validate';

/** Largest spec file or request body accepted (docs/architecture.md §11: sizes are bounded). */
export const MAX_SPEC_BYTES = 1024 * 1024;

/** Parses YAML (JSON is YAML) text; `source` names the file or request in errors. */
export function parseSpecText(text: string, source?: string): unknown {
  if (Buffer.byteLength(text) > MAX_SPEC_BYTES) {
    throw new SpecError([{path: '', message: `spec is ${Buffer.byteLength(text)} bytes, over the ${MAX_SPEC_BYTES} byte limit`}], source);
  }
  const doc = parseDocument(text, {prettyErrors: true, uniqueKeys: true});
  if (doc.errors.length > 0) {
    const issues = doc.errors.map((e) => {
      const line = e.linePos?.[0];
      const where = line ? `line ${line.line}, column ${line.col}: ` : '';
      return {path: '', message: `${where}YAML syntax error: ${e.message.split('\n')[0]}`};
    });
    throw new SpecError(issues, source);
  }
  let value: unknown;
  try {
    value = doc.toJS({maxAliasCount: 100});
  } catch (err) {
    // yaml refuses documents whose aliases would expand without bound ("billion laughs")
    throw new SpecError([{path: '', message: `YAML cannot be expanded: ${(err as Error).message.split('\n')[0]}`}], source);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SpecError([{path: '', message: 'a spec must be a YAML mapping (apiVersion, kind, metadata, spec)'}], source);
  }
  const infinite = finiteIssues(value);
  if (infinite.length > 0) throw new SpecError(infinite, source);
  return value;
}

/** Reads and parses a spec file; throws SpecError naming the file (and the line for YAML errors). */
export function loadSpecFile(path: string): unknown {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (err) {
    throw Object.assign(new SpecError([{path: '', message: `cannot read spec file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`}], path), {cause: err});
  }
  if (size > MAX_SPEC_BYTES) {
    throw new SpecError([{path: '', message: `spec file is ${size} bytes, over the ${MAX_SPEC_BYTES} byte limit`}], path);
  }
  return parseSpecText(readFileSync(path, 'utf8'), path);
}
