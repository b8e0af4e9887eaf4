import type {AgentMsg, CoordinatorMsg} from './agent-messages';

/** One agent's open stream, as the coordinator sees it (transport-neutral). */
export interface AgentConnection {
  /** Peer address as the transport saw it (for logs and as a host fallback). */
  readonly peer: string;
  send(msg: CoordinatorMsg): void;
  /** End the stream from our side; 'permission-denied' says the agent's claim was refused (e.g. its agent id). */
  close(reason: string, code?: 'permission-denied'): void;
}

/** What the transport calls for each authenticated stream. */
export interface AgentStreamHandler {
  onOpen(conn: AgentConnection): {
    onMessage(msg: AgentMsg): void;
    onClose(reason: string): void;
  };
}
