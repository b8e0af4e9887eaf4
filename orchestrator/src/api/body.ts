/** Request bodies: bounded size, JSON or YAML by content type (design.md §11: request sizes are bounded). */
import type {IncomingMessage} from 'node:http';
import {parseSpecText} from '../spec';
import {HttpError} from './http-errors';

/** Largest request body accepted, in bytes. */
export const MAX_BODY_BYTES = 1024 * 1024;

export async function readBody(req: IncomingMessage, maxBytes = MAX_BODY_BYTES): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > maxBytes) throw new HttpError(413, 'too_large', `request body is ${declared} bytes, over the ${maxBytes} byte limit`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw new HttpError(413, 'too_large', `request body is over the ${maxBytes} byte limit`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** The job document of a POST: YAML when the content type says so, else JSON. */
export async function readSpecBody(req: IncomingMessage, maxBytes = MAX_BODY_BYTES): Promise<unknown> {
  const text = (await readBody(req, maxBytes)).toString('utf8');
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
