/**
 * Local launcher: one agent process per rank on this machine
 * (`<pythonBin> -m byol_worker agent --coordinator 127.0.0.1:<port> --devices cpu:1 --agent-id local-<job>-<i>`),
 * with the join token in the environment. Agents exit when released; unexpected exits are losses.
 */
import {spawn, type ChildProcess} from 'node:child_process';
import type {Logger} from 'pino';
import type {AgentLoss, LaunchRequest, Launcher} from '../domain/launcher';

export interface LocalLauncherOptions {
  pythonBin: string;
  agentToken: string;
  logger: Logger;
  /** Working directory of the agents (the repository root). */
  cwd?: string;
  /** Extra environment for the agents (e.g. BYOL_LOG_LEVEL). */
  env?: Record<string, string>;
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
    const child = spawn(this.opts.pythonBin, args, {
      cwd: this.opts.cwd,
      env: {...process.env, ...this.opts.env, BYOL_AGENT_TOKEN: this.opts.agentToken},
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
