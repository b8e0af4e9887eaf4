/**
 * Client-side errors. Every HTTP or network failure is turned into a named error by `toClientError`,
 * the one place that reads status codes (never message text), with the original kept as `cause`.
 */
import {ConflictError, NotFoundError, SpecError, UnauthorizedError, type FieldIssue} from '../domain/errors';

export {ConflictError, NotFoundError, SpecError, UnauthorizedError};

/** The server could not be reached (refused, DNS, timeout); nothing was sent or the reply was lost. */
export class ServerUnreachableError extends Error {
  constructor(readonly server: string, options?: {cause?: unknown}) {
    super(`cannot reach the byol server at ${server}; start one with \`byolctl serve\` or check --server / BYOL_SERVER`, options);
    this.name = 'ServerUnreachableError';
  }
}

/** The server answered with an error that is not the caller's fault (5xx, or a status this client does not know). */
export class ServerError extends Error {
  constructor(readonly status: number, message: string, readonly code?: string, options?: {cause?: unknown}) {
    super(message, options);
    this.name = 'ServerError';
  }
}

/** A request the server refused for its form (bad query, too large, wrong media type), not its spec. */
export class BadRequestError extends Error {
  constructor(readonly status: number, message: string, readonly issues: FieldIssue[] = [], options?: {cause?: unknown}) {
    super(message, options);
    this.name = 'BadRequestError';
  }
}

interface ErrorBodyLike {
  error?: string;
  code?: string;
  issues?: FieldIssue[];
}

/** What went wrong with one call: an HTTP reply (`status`, `body`) or a transport failure (`cause` only). */
export interface FailedCall {
  server: string;
  /** The call, for messages: "GET /v1/jobs/x". */
  what: string;
  /** The resource a 404 refers to. */
  resource?: {what: string; id: string};
  status?: number;
  body?: unknown;
  cause?: unknown;
}

export function toClientError(f: FailedCall): Error {
  if (f.status === undefined) return new ServerUnreachableError(f.server, {cause: f.cause});
  const b = (typeof f.body === 'object' && f.body !== null ? f.body : {}) as ErrorBodyLike;
  const message = b.error ?? `${f.what} failed with HTTP ${f.status}`;
  const cause = {cause: f.cause ?? {status: f.status, body: f.body}};
  let err: Error;
  switch (f.status) {
    case 400:
      if (b.code === 'invalid') {
        err = new SpecError(b.issues && b.issues.length > 0 ? b.issues : [{path: '', message}]);
      } else {
        err = new BadRequestError(f.status, message, b.issues ?? [], cause);
      }
      break;
    case 401:
    case 403:
      err = new UnauthorizedError(message);
      break;
    case 404:
      err = new NotFoundError(f.resource?.what ?? 'route', f.resource?.id ?? f.what);
      break;
    case 409:
      err = new ConflictError(message);
      break;
    case 413:
    case 415:
      err = new BadRequestError(f.status, message, b.issues ?? [], cause);
      break;
    default:
      err = new ServerError(f.status, message, b.code, cause);
  }
  if (!err.cause) Object.defineProperty(err, 'cause', {value: cause.cause, enumerable: false});
  return err;
}
