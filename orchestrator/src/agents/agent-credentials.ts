/**
 * Per-agent session keys (docs/internals.md "Agent credentials"). The shared agent token only admits an
 * agent; the session key binds its agent id, so a holder of the token cannot take over another agent's id,
 * its assignments or its reports. key = base64url(HMAC-SHA256(secret, agentId)): nothing to store per
 * agent, and keys survive a coordinator restart because the secret lives in a file next to the store
 * (created 0600), so agents re-attach with the key they already hold.
 */
import {createHmac, randomBytes, timingSafeEqual} from 'node:crypto';
import {chmodSync, readFileSync, writeFileSync} from 'node:fs';

const SECRET_BYTES = 32;

export class AgentCredentials {
  private constructor(private readonly secret: Buffer) {}

  /** A secret that lives as long as this process (tests, embedded runs). */
  static ephemeral(): AgentCredentials {
    return new AgentCredentials(randomBytes(SECRET_BYTES));
  }

  /** Reads the secret file, or creates it (0600) with a fresh random secret. */
  static fromFile(file: string): AgentCredentials {
    try {
      writeFileSync(file, randomBytes(SECRET_BYTES).toString('hex') + '\n', {flag: 'wx', mode: 0o600});
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new Error(`agent session secret ${file}: cannot create (${(err as Error).message}); check that its folder is writable`);
      }
    }
    const text = readFileSync(file, 'utf8').trim();
    if (!/^[0-9a-f]{64,}$/.test(text)) {
      throw new Error(`agent session secret ${file}: not 64+ hex characters; delete it to make a new one (agents then register afresh)`);
    }
    chmodSync(file, 0o600);
    return new AgentCredentials(Buffer.from(text, 'hex'));
  }

  keyFor(agentId: string): string {
    return createHmac('sha256', this.secret).update(`byol-agent-session/v1\n${agentId}`).digest('base64url');
  }

  /** Constant-time check of a presented key. */
  verify(agentId: string, key: string): boolean {
    const want = Buffer.from(this.keyFor(agentId));
    const given = Buffer.from(key);
    return given.length === want.length && timingSafeEqual(given, want);
  }
}
