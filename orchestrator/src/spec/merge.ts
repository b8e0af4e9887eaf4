/** Step 2 of spec resolution: defaults <- preset <- user document (docs/internals.md). */
import presets from '../../../contract/presets.json';

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Objects merge key by key, arrays and scalars replace; keys starting with `_` are dropped. */
export function deepMerge(base: unknown, over: unknown): unknown {
  if (!isObj(base) || !isObj(over)) return stripComments(over === undefined ? base : over);
  const out: Obj = {};
  for (const [k, v] of Object.entries(base)) if (!k.startsWith('_')) out[k] = stripComments(v);
  for (const [k, v] of Object.entries(over)) {
    if (k.startsWith('_')) continue;
    out[k] = k in out ? deepMerge(out[k], v) : stripComments(v);
  }
  return out;
}

function stripComments(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stripComments);
  if (!isObj(v)) return v;
  const out: Obj = {};
  for (const [k, x] of Object.entries(v)) if (!k.startsWith('_')) out[k] = stripComments(x);
  return out;
}

export const DEFAULT_PRESET: string = presets.defaultPreset;

/** The `spec` section after merging defaults and the named (or default) preset under the user's. */
export function mergeSpec(userSpec: Obj): Obj {
  const name = (userSpec.preset as string | undefined) ?? DEFAULT_PRESET;
  const preset = (presets.presets as Record<string, Obj>)[name];
  if (!preset) throw new Error(`unknown preset ${name}`); // the schema's enum rules this out first
  return deepMerge(deepMerge(presets.defaults, preset), userSpec) as Obj;
}
