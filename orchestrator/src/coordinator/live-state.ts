/**
 * What the coordinator knows only while it runs: the current generation per job, when a job's last
 * fault was detected, which launcher requests were made, and which agents are draining. None of it is
 * in the store; after a restart it is rebuilt from the store (restore.ts) and the agents' Hellos.
 * This class is its one owner: the other modules say what they do, they never touch the maps.
 */
import type {GenerationRun} from '../rendezvous/generation-run';

export class LiveState {
  /** Current generation per job (only jobs with a live group). */
  private readonly runs = new Map<string, GenerationRun>();
  /** When the fault that ended a job's last generation was detected (for recoverySeconds). */
  private readonly faultAtMs = new Map<string, number>();
  /** Per job, the state:generation for which the launcher was last asked for agents. */
  private readonly launched = new Map<string, string>();
  /** Agents that announced they are going away (SIGTERM): not given new work. */
  private readonly draining = new Set<string>();

  // --- generations ---

  /** The job's current generation, if it has a live group. */
  runOf(jobId: string): GenerationRun | undefined {
    return this.runs.get(jobId);
  }

  hasRun(jobId: string): boolean {
    return this.runs.has(jobId);
  }

  /** Is `run` still its job's current generation (timers check this before acting)? */
  isCurrent(run: GenerationRun): boolean {
    return this.runs.get(run.jobId) === run;
  }

  /** `run` becomes its job's current generation. */
  track(run: GenerationRun): void {
    this.runs.set(run.jobId, run);
  }

  /** `run` ended: it stops being current, unless a newer generation already replaced it. */
  untrack(run: GenerationRun): void {
    if (this.runs.get(run.jobId) === run) this.runs.delete(run.jobId);
  }

  /** Generations (ended ones included) that give a rank to `agentId`; a copy, safe to end while iterating. */
  runsWithAgent(agentId: string): GenerationRun[] {
    return [...this.runs.values()].filter((run) => run.agentIds().includes(agentId));
  }

  /** Does a generation that has not ended hold `agentId`? */
  holdsAgent(agentId: string): boolean {
    return this.runsWithAgent(agentId).some((run) => run.phase !== 'ended');
  }

  /** The job reached a terminal state: forget all it had here; returns its generation, if one was current. */
  forgetJob(jobId: string): GenerationRun | undefined {
    const run = this.runs.get(jobId);
    this.runs.delete(jobId);
    this.faultAtMs.delete(jobId);
    this.launched.delete(jobId);
    return run;
  }

  // --- recovery time ---

  /** A fault took the job down at `atMs`; a second one before it recovers keeps the first time. */
  faultDetected(jobId: string, atMs: number): void {
    if (!this.faultAtMs.has(jobId)) this.faultAtMs.set(jobId, atMs);
  }

  /** The job makes progress again: when its fault was detected (then forgotten), if it had one. */
  takeFault(jobId: string): number | undefined {
    const at = this.faultAtMs.get(jobId);
    this.faultAtMs.delete(jobId);
    return at;
  }

  // --- launcher requests ---

  /** True the first time it is called for this job in state `stateKey` (the launcher is asked once per change). */
  launchOnce(jobId: string, stateKey: string): boolean {
    if (this.launched.get(jobId) === stateKey) return false;
    this.launched.set(jobId, stateKey);
    return true;
  }

  // --- draining agents ---

  drain(agentId: string): void {
    this.draining.add(agentId);
  }

  isDraining(agentId: string): boolean {
    return this.draining.has(agentId);
  }

  /** The agent (re)joined or left: it is no longer draining; returns whether it was. */
  clearDraining(agentId: string): boolean {
    return this.draining.delete(agentId);
  }
}
