/**
 * May this Hello take its agent id? (docs/internals.md "Agent credentials".) A Hello with a session key
 * must carry the key issued for that id. A Hello without one registers a new agent, so its id must be
 * free: not registered, and not held by a live generation (after a coordinator restart, the agents that
 * held it come back with their keys).
 */
import type {HelloMsg} from '../agents/agent-messages';
import type {CoordinatorContext} from './context';

export function claimRefusal(ctx: Pick<CoordinatorContext, 'credentials' | 'agents' | 'live'>, hello: HelloMsg): string | null {
  const id = hello.agentId;
  if (hello.sessionKey) {
    return ctx.credentials.verify(id, hello.sessionKey)
      ? null
      : `the session key does not belong to agent id "${id}" (the coordinator's session secret may have changed); the agent registers afresh`;
  }
  const held = ctx.agents.get(id) !== undefined || ctx.live.holdsAgent(id);
  return held
    ? `agent id "${id}" is taken: a reconnect must present the session key its Welcome gave; start a new agent with another --agent-id`
    : null;
}
