/** Rules for the shared secrets (agent token, API token): one place, used by serve and the coordinator. */
export const MIN_TOKEN_LENGTH = 16;

/** Why `token` is unusable as `what` (e.g. "--agent-token"), or null when it is fine. */
export function tokenProblem(token: string, what: string): string | null {
  if (token.length < MIN_TOKEN_LENGTH) {
    return `${what} is ${token.length} characters; use at least ${MIN_TOKEN_LENGTH} random ones, e.g. $(openssl rand -hex 32)`;
  }
  if (/\s/.test(token)) return `${what} contains whitespace (a stray newline or space?); use a token without any`;
  return null;
}
