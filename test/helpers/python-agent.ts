/** Real Python agents (`python -m byol_worker agent`) as child processes, with their output kept for failures. */
import {spawn, type ChildProcess} from 'node:child_process';
import {PYTHON_BIN, REPO_ROOT, tempDir} from './temp';

export interface PythonAgent {
  agentId: string;
  child: ChildProcess;
  /** Everything the agent (and its trainers) wrote, for assertion messages. */
  output(): string;
  exited: Promise<{code: number | null; signal: NodeJS.Signals | null}>;
  /** SIGKILL if still running. */
  kill(): void;
}

const running = new Set<PythonAgent>();

export interface PythonAgentOptions {
  workDir?: string;
  /** More flags (e.g. --tls-ca FILE). */
  args?: string[];
  /** More environment. */
  env?: Record<string, string>;
  /** --host (default 127.0.0.1). */
  host?: string;
}

export function spawnPythonAgent(coordinator: string, agentId: string, token: string | null, opts: PythonAgentOptions = {}): PythonAgent {
  const env: NodeJS.ProcessEnv = {...process.env, OMP_NUM_THREADS: '1', BYOL_LOG_LEVEL: process.env.BYOL_TEST_AGENT_LOG ?? 'info', ...opts.env};
  if (token === null) delete env.BYOL_AGENT_TOKEN;
  else env.BYOL_AGENT_TOKEN = token;
  const args = ['-m', 'byol_worker', 'agent', '--coordinator', coordinator, '--agent-id', agentId, '--devices', 'cpu:1', '--host', opts.host ?? '127.0.0.1', ...(opts.args ?? [])];
  // Its own work folder (assignment files, sockets), removed when it exits.
  const work = opts.workDir ? {path: opts.workDir, cleanup: () => undefined} : tempDir('byol-agent-test-');
  args.push('--work-dir', work.path);
  const child = spawn(PYTHON_BIN, args, {cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe']});
  let out = '';
  const keep = (b: Buffer) => {
    out = (out + b.toString()).slice(-200_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<{code: number | null; signal: NodeJS.Signals | null}>((resolve) =>
    child.on('exit', (code, signal) => resolve({code, signal})));
  const agent: PythonAgent = {
    agentId, child, exited, output: () => out,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
  running.add(agent);
  exited.then(() => {
    running.delete(agent);
    work.cleanup();
  });
  return agent;
}

/** Kills every agent still running (afterEach), and waits for them to go. */
export async function killAllAgents(): Promise<void> {
  const all = [...running];
  for (const a of all) a.kill();
  await Promise.all(all.map((a) => a.exited));
}
