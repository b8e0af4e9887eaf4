/** Builds a launcher by name; 'kubernetes' is loaded lazily so its client is only required when used. */
import type {Logger} from 'pino';
import type {Launcher} from '../domain/launcher';
import {ExternalLauncher} from './external';
import {LocalLauncher, type LocalAgentTls} from './local';

export type LauncherName = 'local' | 'external' | 'kubernetes';

export interface CreateLauncherOptions {
  pythonBin: string;
  agentToken: string;
  logger: Logger;
  /** How local agents verify a TLS coordinator (absent: plaintext on loopback). */
  localAgentTls?: LocalAgentTls;
  /** Working directory for local agents. */
  cwd?: string;
  /** Passed through to the Kubernetes launcher (namespace, image, ...). */
  kubernetes?: Record<string, unknown>;
}

export async function createLauncher(name: LauncherName, opts: CreateLauncherOptions): Promise<Launcher> {
  switch (name) {
    case 'local':
      return new LocalLauncher({pythonBin: opts.pythonBin, agentToken: opts.agentToken, logger: opts.logger, cwd: opts.cwd, tls: opts.localAgentTls});
    case 'external':
      return new ExternalLauncher();
    case 'kubernetes': {
      // The Kubernetes helper's module exports createKubernetesLauncher(options, logger).
      // require, not import(): the build is CommonJS and jest runs without ESM support.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const mod = require('./kubernetes') as {createKubernetesLauncher: (o: Record<string, unknown>, l: Logger) => Launcher | Promise<Launcher>};
      return mod.createKubernetesLauncher({...opts.kubernetes, agentToken: opts.agentToken}, opts.logger);
    }
    default:
      throw new Error(`unknown launcher "${String(name)}"; use local, external or kubernetes`);
  }
}
