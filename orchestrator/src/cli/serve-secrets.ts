/**
 * Where `byolctl serve` takes its tokens from: a file (--agent-token-file / --api-token-file, or the
 * *_FILE environment variables), the environment (BYOL_AGENT_TOKEN / BYOL_API_TOKEN), or, still accepted
 * but warned about, the command line, where every user of the host can read it in `ps`.
 */
import {readFileSync, statSync} from 'node:fs';
import type {Logger} from 'pino';
import {tokenProblem} from '../domain/token-rules';
import {UsageError} from './exit-codes';

export interface TokenSource {
  /** e.g. 'agent-token': flags --agent-token and --agent-token-file, env BYOL_AGENT_TOKEN and BYOL_AGENT_TOKEN_FILE. */
  name: 'agent-token' | 'api-token';
  /** --<name> as given on the command line. */
  flag?: string;
  /** --<name>-file as given on the command line. */
  file?: string;
}

const envName = (name: TokenSource['name']) => `BYOL_${name.replace('-', '_').toUpperCase()}`;

function readTokenFile(file: string, flag: string, log: Logger): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`${flag} ${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if ((statSync(file).mode & 0o077) !== 0) {
    log.warn({file}, `${flag}: the file is readable by other users; chmod 600 it`);
  }
  const token = text.replace(/\r?\n$/, '');
  if (!token) throw new UsageError(`${flag} ${file}: the file is empty; put the token on its first line`);
  return token;
}

/** The token, or undefined when none was given anywhere. Throws UsageError for a bad file or a weak token. */
export function resolveToken(src: TokenSource, env: NodeJS.ProcessEnv, log: Logger): string | undefined {
  const flag = `--${src.name}`;
  const fileFlag = `${flag}-file`;
  if (src.flag !== undefined && src.file !== undefined) throw new UsageError(`give ${flag} or ${fileFlag}, not both`);
  let token: string | undefined;
  let from: string;
  if (src.flag !== undefined) {
    log.warn({flag}, `${flag} on the command line is visible to every user of this host (ps, /proc); use ${fileFlag} or ${envName(src.name)}`);
    token = src.flag;
    from = flag;
  } else if (src.file !== undefined) {
    token = readTokenFile(src.file, fileFlag, log);
    from = fileFlag;
  } else if (env[envName(src.name)]) {
    token = env[envName(src.name)];
    from = envName(src.name);
  } else if (env[`${envName(src.name)}_FILE`]) {
    token = readTokenFile(env[`${envName(src.name)}_FILE`]!, `${envName(src.name)}_FILE`, log);
    from = `${envName(src.name)}_FILE`;
  } else {
    return undefined;
  }
  const problem = tokenProblem(token!, from);
  if (problem) throw new UsageError(problem);
  return token;
}
