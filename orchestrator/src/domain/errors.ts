/** Domain errors. Transport layers (REST, gRPC, CLI) map them to status codes in one place each. */

export interface FieldIssue {
  /** Field path in the document, e.g. "spec.optimizer.baseLr" ("" for the document itself). */
  path: string;
  /** What is wrong and, where it helps, what to do: "must be > 0". */
  message: string;
}

/** A job spec (or request body) that is invalid; nothing was created or changed. */
export class SpecError extends Error {
  constructor(readonly issues: FieldIssue[], readonly file?: string) {
    super(
      (file ? `${file}: ` : '') +
        issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; '),
    );
    this.name = 'SpecError';
  }
}

export class NotFoundError extends Error {
  constructor(readonly what: string, readonly id: string) {
    super(`${what} ${id} not found`);
    this.name = 'NotFoundError';
  }
}

/** The request conflicts with the current state (e.g. cancelling a finished job). */
export class ConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConflictError';
  }
}

export class UnauthorizedError extends Error {
  constructor(message = 'missing or wrong bearer token; set BYOL_API_TOKEN') {
    super(message);
    this.name = 'UnauthorizedError';
  }
}
