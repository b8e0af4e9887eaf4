/** Checkpoint retention (docs/architecture.md §7) as a pure function: keep the last N, and every M steps. */

/**
 * Steps to delete among the good checkpoints `okSteps` (any order): everything except the
 * `keepLast` newest and, when `keepEvery` > 0, those whose step is a multiple of it.
 * The newest is always kept, even with keepLast 0, so there is something to resume from.
 */
export function stepsToDelete(okSteps: number[], keepLast: number, keepEvery: number): number[] {
  const asc = [...new Set(okSteps)].sort((a, b) => a - b);
  const keep = new Set(asc.slice(Math.max(0, asc.length - Math.max(1, keepLast))));
  if (keepEvery > 0) for (const s of asc) if (s % keepEvery === 0) keep.add(s);
  return asc.filter((s) => !keep.has(s));
}
