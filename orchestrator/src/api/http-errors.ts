/** Domain errors -> HTTP status and JSON body, in this one function (every route uses it). */
import {ConflictError, NotFoundError, SpecError, UnauthorizedError, type FieldIssue} from '../domain/errors';

/** The body of every error response. */
export interface ErrorBody {
  error: string;
  /** Machine-readable kind: 'invalid' | 'not_found' | 'conflict' | 'unauthorized' | 'too_large' | 'internal' | ... */
  code: string;
  issues?: FieldIssue[];
}

/** A request problem found by the HTTP layer itself (bad JSON, body too large, unknown route). */
export class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly issues?: FieldIssue[]) {
    super(message);
    this.name = 'HttpError';
  }
}

export function toHttpError(err: unknown): {status: number; body: ErrorBody} {
  if (err instanceof HttpError) {
    return {status: err.status, body: {error: err.message, code: err.code, ...(err.issues ? {issues: err.issues} : {})}};
  }
  if (err instanceof SpecError) return {status: 400, body: {error: err.message, code: 'invalid', issues: err.issues}};
  if (err instanceof NotFoundError) return {status: 404, body: {error: err.message, code: 'not_found'}};
  if (err instanceof ConflictError) return {status: 409, body: {error: err.message, code: 'conflict'}};
  if (err instanceof UnauthorizedError) return {status: 401, body: {error: err.message, code: 'unauthorized'}};
  return {status: 500, body: {error: 'internal error; see the coordinator log', code: 'internal'}};
}
