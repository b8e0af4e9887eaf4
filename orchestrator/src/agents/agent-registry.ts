/**
 * Connected agents, their devices, and which job/generation/rank holds each device.
 * Heartbeats: a stream silent for longer than heartbeatTimeoutMs makes the agent lost.
 */
import type {WorkerInfo} from '../domain/types';
import type {AgentConnection} from './agent-connection';
import type {CoordinatorMsg, DeviceInfo, HelloMsg} from './agent-messages';

export interface DeviceSlot {jobId: string; generation: number; rank: number}

export interface AgentRecord {
  agentId: string;
  host: string;
  devices: DeviceInfo[];
  versions: Record<string, string>;
  conn: AgentConnection | null;
  lastSeenMs: number;
  /** device id -> holder */
  assigned: Map<string, DeviceSlot>;
}

export interface FreeDevice {agentId: string; deviceId: string; host: string}

export class AgentRegistry {
  private readonly agents = new Map<string, AgentRecord>();
  /** agentId/deviceId -> a trainer we aborted that has not reported its end yet (or until a deadline). */
  private readonly settling = new Map<string, DeviceSlot & {untilMs: number}>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Registers (or re-registers after a reconnect) an agent; returns the previous connection if any. */
  join(hello: HelloMsg, conn: AgentConnection): AgentConnection | null {
    const prev = this.agents.get(hello.agentId);
    const rec: AgentRecord = {
      agentId: hello.agentId,
      host: hello.host || conn.peer.replace(/:\d+$/, ''),
      devices: hello.devices,
      versions: hello.versions,
      conn,
      lastSeenMs: this.now(),
      assigned: prev?.assigned ?? new Map(),
    };
    this.agents.set(hello.agentId, rec);
    return prev?.conn && prev.conn !== conn ? prev.conn : null;
  }

  get(agentId: string): AgentRecord | undefined {
    return this.agents.get(agentId);
  }

  touch(agentId: string): void {
    const a = this.agents.get(agentId);
    if (a) a.lastSeenMs = this.now();
  }

  /** The agent is gone; its devices are freed. Returns what its devices held. */
  remove(agentId: string): DeviceSlot[] {
    const a = this.agents.get(agentId);
    if (!a) return [];
    this.agents.delete(agentId);
    for (const key of [...this.settling.keys()]) if (key.startsWith(`${agentId}/`)) this.settling.delete(key);
    return [...a.assigned.values()];
  }

  isConnected(agentId: string): boolean {
    return Boolean(this.agents.get(agentId)?.conn);
  }

  send(agentId: string, msg: CoordinatorMsg): boolean {
    const a = this.agents.get(agentId);
    if (!a?.conn) return false;
    a.conn.send(msg);
    return true;
  }

  /** Agents whose stream has been silent longer than timeoutMs. */
  silent(timeoutMs: number): string[] {
    const t = this.now();
    return [...this.agents.values()].filter((a) => t - a.lastSeenMs > timeoutMs).map((a) => a.agentId);
  }

  assign(agentId: string, deviceId: string, slot: DeviceSlot): void {
    this.agents.get(agentId)?.assigned.set(deviceId, slot);
  }

  /** Frees every device held by a job (all generations, or only `generation`). */
  release(jobId: string, generation?: number): void {
    for (const a of this.agents.values()) {
      for (const [dev, slot] of a.assigned) {
        if (slot.jobId === jobId && (generation === undefined || slot.generation === generation)) a.assigned.delete(dev);
      }
    }
  }

  /**
   * The device's trainer was told to abort: keep the device out of placement until the agent
   * reports that trainer's end (an agent refuses a busy device), or until `untilMs`.
   */
  settle(agentId: string, deviceId: string, slot: DeviceSlot, untilMs: number): void {
    this.settling.set(`${agentId}/${deviceId}`, {...slot, untilMs});
  }

  /** A trainer of (job, generation, rank) on this agent ended; returns true if a device was waiting on it. */
  settled(agentId: string, jobId: string, generation: number, rank: number): boolean {
    for (const [key, s] of this.settling) {
      if (key.startsWith(`${agentId}/`) && s.jobId === jobId && s.generation === generation && s.rank === rank) {
        this.settling.delete(key);
        return true;
      }
    }
    return false;
  }

  /** Devices of connected agents that hold no job; `includeSettling` also counts those still settling. */
  freeDevices(opts: {includeSettling?: boolean} = {}): FreeDevice[] {
    const out: FreeDevice[] = [];
    const t = this.now();
    for (const a of this.agents.values()) {
      if (!a.conn) continue;
      for (const d of a.devices) {
        if (a.assigned.has(d.id)) continue;
        const key = `${a.agentId}/${d.id}`;
        const s = this.settling.get(key);
        if (s && s.untilMs <= t) this.settling.delete(key); // its trainer never reported: reuse anyway
        else if (s && !opts.includeSettling) continue;
        out.push({agentId: a.agentId, deviceId: d.id, host: a.host});
      }
    }
    return out;
  }

  list(): WorkerInfo[] {
    return [...this.agents.values()].map((a) => ({
      agentId: a.agentId,
      host: a.host,
      devices: a.devices.map((d) => ({...d})),
      versions: {...a.versions},
      connected: Boolean(a.conn),
      lastHeartbeatMs: a.lastSeenMs,
      assigned: Object.fromEntries([...a.assigned].map(([dev, s]) => [dev, {...s}])),
    }));
  }
}
