/**
 * Per-(job, generation, rank) telemetry keys (docs/internals.md "Telemetry"). Each key is
 * HMAC-SHA256(secret, job/generation/rank) with a 32-byte secret the coordinator keeps in a 0600
 * file next to its store, so a restarted coordinator still verifies the frames of the trainers it
 * re-attaches. Only the assignment of that rank carries its key: a trainer cannot sign for another
 * rank, and nobody without an assignment can sign at all.
 */
import {createHmac, randomBytes, timingSafeEqual} from 'node:crypto';
import {chmodSync, mkdirSync, openSync, readFileSync, writeSync, closeSync} from 'node:fs';
import {dirname} from 'node:path';

export const MAC_BYTES = 32;

export class TelemetryKeys {
  constructor(private readonly secret: Buffer) {
    if (secret.length < 32) throw new Error('telemetry secret: need at least 32 bytes');
  }

  /** A fresh random secret (tests, benchmarks, an in-memory store). */
  static random(): TelemetryKeys {
    return new TelemetryKeys(randomBytes(32));
  }

  /** Reads the secret at `path`, or creates it (0600, exclusively) when absent. */
  static fromFile(path: string): TelemetryKeys {
    try {
      return new TelemetryKeys(readSecret(path));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    mkdirSync(dirname(path), {recursive: true, mode: 0o700});
    try {
      const fd = openSync(path, 'wx', 0o600);
      try {
        writeSync(fd, randomBytes(32).toString('hex'));
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err; // another process won the race
    }
    return new TelemetryKeys(readSecret(path));
  }

  keyFor(jobId: string, generation: number, rank: number): Buffer {
    return createHmac('sha256', this.secret).update(`byol-telemetry\0${jobId}\0${generation}\0${rank}`).digest();
  }

  /** True when `mac` is HMAC-SHA256(key, frame); constant time in the MAC comparison. */
  static verify(key: Buffer, frame: Uint8Array, mac: Uint8Array): boolean {
    if (mac.length !== MAC_BYTES) return false;
    return timingSafeEqual(createHmac('sha256', key).update(frame).digest(), mac);
  }

  static sign(key: Buffer, frame: Uint8Array): Buffer {
    return createHmac('sha256', key).update(frame).digest();
  }
}

function readSecret(path: string): Buffer {
  const hex = readFileSync(path, 'utf8').trim();
  if (!/^[0-9a-f]{64,}$/i.test(hex)) {
    throw new Error(`telemetry secret ${path}: expected at least 64 hex characters; delete the file to make a new one`);
  }
  chmodSync(path, 0o600); // keep it private even if someone loosened it
  return Buffer.from(hex, 'hex');
}
