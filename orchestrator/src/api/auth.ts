/**
 * Who may call the REST API (README "Security"): with a token, every route but /healthz and /readyz
 * (and /metrics when made public) needs it; without one the server stays on loopback, where the Host
 * header must name loopback too (DNS rebinding), unless the operator opted out explicitly.
 */
import {timingSafeEqual} from 'node:crypto';
import type {IncomingMessage} from 'node:http';
import {UnauthorizedError} from '../domain/errors';
import {HttpError} from './http-errors';

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost', '::ffff:127.0.0.1']);

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK.has(host) || host.startsWith('127.');
}

export interface AuthPolicy {
  /** The API token (BYOL_API_TOKEN); undefined = none configured. */
  token?: string;
  /** The address the server listens on. */
  host: string;
  /** Listen beyond loopback without a token (--insecure-no-token): every route is open to the network. */
  insecureNoToken?: boolean;
}

/** Why this server must not start (beyond loopback, no token, no explicit opt-out), or undefined. */
export function listenRefusal(p: AuthPolicy): string | undefined {
  if (p.token !== undefined || isLoopbackHost(p.host) || p.insecureNoToken) return undefined;
  return `the REST API would listen on ${p.host} without an API token, open to anyone who reaches it; ` +
    'set an API token (BYOL_API_TOKEN), listen on 127.0.0.1, or pass --insecure-no-token (only behind an authenticating proxy)';
}

/** True when calls to non-public routes must carry the bearer token. */
export function tokenRequired(p: AuthPolicy): boolean {
  return p.token !== undefined;
}

/** Throws UnauthorizedError unless the request carries the token (when one is set). */
export function checkAccess(req: IncomingMessage, p: AuthPolicy): void {
  if (p.token === undefined) return;
  const m = /^Bearer\s+(.+)$/i.exec(String(req.headers.authorization ?? ''));
  const given = Buffer.from(m ? m[1].trim() : '');
  const want = Buffer.from(p.token);
  if (!m || given.length !== want.length || !timingSafeEqual(given, want)) {
    throw new UnauthorizedError(m ? 'wrong bearer token; use the server\'s BYOL_API_TOKEN' : undefined);
  }
}

/**
 * A tokenless loopback server answers only requests addressed to loopback by name, so a web page whose
 * domain was re-pointed at 127.0.0.1 (DNS rebinding) cannot drive it from a browser.
 */
export function checkHost(req: IncomingMessage, p: AuthPolicy, port: number): void {
  if (p.token !== undefined || !isLoopbackHost(p.host)) return;
  const given = String(req.headers.host ?? '').toLowerCase();
  const bound = p.host.includes(':') ? `[${p.host}]` : p.host;
  const names = new Set(['localhost', '127.0.0.1', '[::1]', bound.toLowerCase()]);
  const allowed = [...names].map((n) => `${n}:${port}`);
  if (!allowed.includes(given)) {
    throw new HttpError(403, 'bad_host', `Host header '${given.slice(0, 100)}' does not name this loopback server; ` +
      `use http://127.0.0.1:${port} (a tokenless server answers loopback names only, against DNS rebinding)`);
  }
}
