/** `--name N` from the command line of a benchmark script: a positive integer, else `dflt` when absent. */
export function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name}: expected a positive integer, got ${process.argv[i + 1]}`);
  return v;
}
