/** byolctl exit codes (documented in `byolctl --help`). Errors map to them here and only here. */
import {BadRequestError, ConflictError, NotFoundError, ServerError, ServerUnreachableError, SpecError, UnauthorizedError} from '../client/errors';
import {TERMINAL_STATES, type JobState} from '../domain/types';

export const EXIT = {
  ok: 0,
  /** The job failed or was cancelled, or the server failed. */
  failed: 1,
  /** Bad input: spec, flags, token, or a request the job's state does not allow. */
  badInput: 2,
  notFound: 3,
  unreachable: 4,
  interrupted: 130,
} as const;

export const EXIT_CODES_HELP =
  'Exit codes: 0 ok, 1 job failed/cancelled or server error, 2 bad input, 3 not found, 4 cannot reach server, 130 interrupted.';

/** An error the CLI raises itself for bad flags or arguments. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Ctrl-C while a command waited. */
export class InterruptedError extends Error {
  constructor() {
    super('interrupted');
    this.name = 'InterruptedError';
  }
}

export function exitCodeFor(err: unknown): number {
  if (err instanceof InterruptedError) return EXIT.interrupted;
  if (err instanceof SpecError || err instanceof BadRequestError || err instanceof UsageError) return EXIT.badInput;
  if (err instanceof UnauthorizedError || err instanceof ConflictError) return EXIT.badInput;
  if (err instanceof NotFoundError) return EXIT.notFound;
  if (err instanceof ServerUnreachableError) return EXIT.unreachable;
  if (err instanceof ServerError) return EXIT.failed;
  return EXIT.failed;
}

/** The exit code of a finished job: 0 only when it succeeded. */
export function exitCodeForState(state: JobState): number {
  if (!TERMINAL_STATES.includes(state)) return EXIT.ok;
  return state === 'SUCCEEDED' ? EXIT.ok : EXIT.failed;
}
