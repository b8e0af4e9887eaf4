/** The frame every command runs in: open the target, run, print errors, set process.exitCode. */
import {SpecError} from '../client/errors';
import {EXIT, exitCodeFor, InterruptedError} from './exit-codes';
import type {CliIo} from './io';
import {openTarget, type GlobalArgs, type Target} from './target';

export interface CliContext {
  io: CliIo;
  /** Aborted on Ctrl-C (main.ts); commands that wait stop and exit 130. */
  signal: AbortSignal;
}

function describeError(err: unknown, debug: boolean): string {
  if (err instanceof SpecError) {
    const head = err.file ? `invalid spec ${err.file}:` : 'invalid spec:';
    return [head, ...err.issues.map((i) => `  ${i.path ? `${i.path}: ` : ''}${i.message}`)].join('\n');
  }
  const e = err as Error;
  if (!debug) return `error: ${e?.message ?? String(err)}`;
  let text = e?.stack ?? String(err);
  for (let c = (e as {cause?: unknown})?.cause; c; c = (c as {cause?: unknown}).cause) {
    text += `\ncaused by: ${(c as Error).stack ?? JSON.stringify(c)}`;
  }
  return text;
}

/** Runs `body`, turning its result or error into the process exit code. */
export async function runCommand(ctx: CliContext, argv: GlobalArgs, body: () => Promise<number>): Promise<void> {
  let code: number;
  try {
    code = await body();
  } catch (err) {
    code = ctx.signal.aborted ? EXIT.interrupted : exitCodeFor(err);
    ctx.io.err(`${ctx.signal.aborted ? 'interrupted' : describeError(err, argv.debug)}\n`);
  }
  process.exitCode = code;
}

/** Runs `body` with a client to the target server, closing an embedded coordinator afterwards. */
export async function withTarget(ctx: CliContext, argv: GlobalArgs, launcher: 'local' | 'external',
  body: (t: Target) => Promise<number>): Promise<void> {
  await runCommand(ctx, argv, async () => {
    const target = await openTarget(argv, launcher);
    try {
      return await body(target);
    } finally {
      await target.close();
    }
  });
}

/** Throws InterruptedError when Ctrl-C was pressed. */
export function checkInterrupted(ctx: CliContext): void {
  if (ctx.signal.aborted) throw new InterruptedError();
}
