/**
 * Local launcher: one agent process per rank on this machine
 * (`<pythonBin> -m byol_worker agent --coordinator 127.0.0.1:<port> --devices cpu:1 --agent-id local-<job>-<i>`),
 * with the join token in the environment, and only that secret: the coordinator's own secrets (API token,
 * key files) are removed from what the agents and their trainers inherit. With TLS, agents get --tls-ca and,
 * since they dial 127.0.0.1, --tls-server-name. Agents exit when released; unexpected exits are losses.
 */
import {spawn, type ChildProcess} from 'node:child_process';
import type {Logger} from 'pino';
import type {AgentLoss, LaunchRequest, Launcher} from '../domain/launcher';

/** How local agents verify a TLS coordinator. */
export interface LocalAgentTls {
  /** PEM CA file that signed the coordinator's certificate (a self-signed certificate is its own CA). */
  caFile: string;
  /** Name to check the certificate against, since local agents dial 127.0.0.1 (absent: the certificate names 127.0.0.1). */
  serverName?: string;
}

/** Environment names that carry the coordinator's secrets (or where to find them): never handed to agents. */
const COORDINATOR_SECRETS = /^BYOL_(API_TOKEN|API_TOKEN_FILE|AGENT_TOKEN_FILE|TLS_KEY|TLS_CERT|GRPC_TLS_.*)$/;

/** The agents' environment: ours without the coordinator's secrets, plus `extra`. */
export function agentEnvironment(base: NodeJS.ProcessEnv, extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(base).filter(([k]) => !COORDINATOR_SECRETS.test(k)));
  return {...env, ...extra};
}

export interface LocalLauncherOptions {
  pythonBin: string;
  agentToken: string;
  logger: Logger;
  /** Working directory of the agents (the repository root). */
  cwd?: string;
  /** Extra environment for the agents (e.g. BYOL_LOG_LEVEL). */
  env?: Record<string, string>;
  /** TLS settings for the agents when the coordinator serves TLS. */
  tls?: LocalAgentTls;
  /** Grace before SIGKILL when stopping an agent. Default 10000. */
  stopGraceMs?: number;
}

export const localAgentId = (jobId: string, i: number): string => `local-${jobId}-${i}`;

export class LocalLauncher implements Launcher {
  readonly name = 'local' as const;
  private readonly procs = new Map<string, {jobId: string; child: ChildProcess; stopping: boolean}>();
  private readonly listeners: ((l: AgentLoss) => void)[] = [];
  private readonly log: Logger;

  constructor(private readonly opts: LocalLauncherOptions) {
    this.log = opts.logger.child({module: 'launcher-local'});
  }

  async ensureAgents(req: LaunchRequest): Promise<void> {
    for (let i = 0; i < req.workers; i++) {
      const agentId = localAgentId(req.jobId, i);
      if (this.procs.has(agentId)) continue;
      // Same machine: dial loopback whatever address the coordinator advertises to remote agents.
      const port = req.coordinatorAddress.slice(req.coordinatorAddress.lastIndexOf(':') + 1);
      this.spawnAgent(req.jobId, agentId, `127.0.0.1:${port}`);
    }
  }

  private spawnAgent(jobId: string, agentId: string, coordinator: string): void {
    const args = ['-m', 'byol_worker', 'agent', '--coordinator', coordinator, '--devices', 'cpu:1', '--agent-id', agentId];
    if (this.opts.tls) {
      args.push('--tls-ca', this.opts.tls.caFile);
      if (this.opts.tls.serverName) args.push('--tls-server-name', this.opts.tls.serverName);
    }
    const child = spawn(this.opts.pythonBin, args, {
      cwd: this.opts.cwd,
      env: agentEnvironment(process.env, {...this.opts.env, BYOL_AGENT_TOKEN: this.opts.agentToken}),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const entry = {jobId, child, stopping: false};
    this.procs.set(agentId, entry);
    let tail = '';
    const keep = (b: Buffer) => {
      tail = (tail + b.toString()).slice(-2000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.on('error', (err) => this.log.error({err, agentId, pythonBin: this.opts.pythonBin}, 'cannot start agent; check pythonBin and that byol_worker is installed'));
    child.on('exit', (code, signal) => {
      if (this.procs.get(agentId) === entry) this.procs.delete(agentId);
      if (entry.stopping) return;
      const lastLine = tail.trim().split('\n').pop() ?? '';
      this.log.warn({agentId, code, signal, lastLine}, 'local agent exited on its own');
      for (const l of this.listeners) l({jobId, agentId, reason: `exited (${signal ?? code}): ${lastLine}`});
    });
    this.log.info({agentId, pid: child.pid}, 'local agent started');
  }

  async release(jobId: string): Promise<void> {
    const stops = [...this.procs].filter(([, e]) => e.jobId === jobId).map(([id]) => this.stop(id));
    await Promise.all(stops);
  }

  onLoss(listener: (loss: AgentLoss) => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    await Promise.all([...this.procs.keys()].map((id) => this.stop(id)));
  }

  private stop(agentId: string): Promise<void> {
    const e = this.procs.get(agentId);
    if (!e) return Promise.resolve();
    e.stopping = true;
    this.procs.delete(agentId);
    if (e.child.exitCode !== null || e.child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const kill = setTimeout(() => e.child.kill('SIGKILL'), this.opts.stopGraceMs ?? 10_000);
      e.child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      e.child.kill('SIGTERM');
    });
  }
}
