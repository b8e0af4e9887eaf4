/** Request bodies: bounded size, JSON or YAML by content type (docs/architecture.md §11: request sizes are bounded). */
import type {IncomingMessage} from 'node:http';
import {parseSpecText} from '../spec';
import {HttpError} from './http-errors';

/** Largest request body accepted, in bytes. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Default deadline for a whole body once the headers are in (a slow sender is cut off). */
export const BODY_TIMEOUT_MS = 30_000;

/** The body, bounded in size (413) and in time (408, so a trickling sender cannot hold the request open). */
export function readBody(req: IncomingMessage, maxBytes = MAX_BODY_BYTES, timeoutMs = BODY_TIMEOUT_MS): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > maxBytes) return Promise.reject(new HttpError(413, 'too_large', `request body is ${declared} bytes, over the ${maxBytes} byte limit`));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (err?: Error) => {
      clearTimeout(timer);
      req.off('data', onData).off('end', onEnd).off('error', done);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) done(new HttpError(413, 'too_large', `request body is over the ${maxBytes} byte limit`));
      else chunks.push(chunk);
    };
    const onEnd = () => done();
    const timer = setTimeout(() => done(new HttpError(408, 'timeout',
      `request body not complete after ${Math.round(timeoutMs / 1000)} s (${size} bytes in); send the whole body at once`)), timeoutMs);
    req.on('data', onData).on('end', onEnd).on('error', done);
  });
}

/** The job document of a POST: YAML when the content type says so, else JSON. */
export async function readSpecBody(req: IncomingMessage, maxBytes = MAX_BODY_BYTES, timeoutMs = BODY_TIMEOUT_MS): Promise<unknown> {
  const text = (await readBody(req, maxBytes, timeoutMs)).toString('utf8');
  const type = String(req.headers['content-type'] ?? 'application/json').split(';')[0].trim().toLowerCase();
  if (type === 'application/yaml' || type === 'application/x-yaml' || type === 'text/yaml') return parseSpecText(text, 'request body');
  if (type !== 'application/json') {
    throw new HttpError(415, 'unsupported_media_type', `content type ${type} is not supported; send application/json or application/yaml`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, 'invalid', `request body is not valid JSON: ${(err as Error).message}`, [
      {path: '', message: `request body is not valid JSON: ${(err as Error).message}`},
    ]);
  }
}
