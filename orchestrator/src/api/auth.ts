/** Bearer-token checks for state-changing REST calls (design.md §11). */
import {timingSafeEqual} from 'node:crypto';
import type {IncomingMessage} from 'node:http';
import {UnauthorizedError} from '../domain/errors';

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost', '::ffff:127.0.0.1']);

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK.has(host) || host.startsWith('127.');
}

export interface AuthPolicy {
  /** The API token (BYOL_API_TOKEN); undefined = none configured. */
  token?: string;
  /** The address the server listens on; a non-loopback address needs a token for state changes. */
  host: string;
}

/** True when a state-changing call on this server must carry the bearer token. */
export function tokenRequired(p: AuthPolicy): boolean {
  return p.token !== undefined || !isLoopbackHost(p.host);
}

/** Throws UnauthorizedError unless the request may change state. */
export function checkWriteAccess(req: IncomingMessage, p: AuthPolicy): void {
  if (!tokenRequired(p)) return;
  if (p.token === undefined) {
    throw new UnauthorizedError(`this server listens on ${p.host} without an API token; restart it with BYOL_API_TOKEN set`);
  }
  const m = /^Bearer\s+(.+)$/i.exec(String(req.headers.authorization ?? ''));
  const given = Buffer.from(m ? m[1].trim() : '');
  const want = Buffer.from(p.token);
  if (!m || given.length !== want.length || !timingSafeEqual(given, want)) {
    throw new UnauthorizedError(m ? 'wrong bearer token; use the server\'s BYOL_API_TOKEN' : undefined);
  }
}
