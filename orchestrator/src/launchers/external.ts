import type {AgentLoss, Launcher} from '../domain/launcher';

/** Agents are started by something else (srun, systemd, pods) and dial in on their own. */
export class ExternalLauncher implements Launcher {
  readonly name = 'external' as const;
  async ensureAgents(): Promise<void> {}
  async release(): Promise<void> {}
  onLoss(_listener: (loss: AgentLoss) => void): void {}
  async close(): Promise<void> {}
}
