import type {AgentMsg, CoordinatorMsg} from './agent-messages';

/** One agent's open stream, as the coordinator sees it (transport-neutral). */
export interface AgentConnection {
  /** Peer address as the transport saw it (for logs and as a host fallback). */
  readonly peer: string;
  send(msg: CoordinatorMsg): void;
  /** End the stream from our side (e.g. a duplicate agent id). */
  close(reason: string): void;
}

/** What the transport calls for each authenticated stream. */
export interface AgentStreamHandler {
  onOpen(conn: AgentConnection): {
    onMessage(msg: AgentMsg): void;
    onClose(reason: string): void;
  };
}
