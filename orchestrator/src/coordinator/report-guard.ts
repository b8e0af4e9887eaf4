/**
 * Authorisation and plausibility of agent reports (docs/internals.md "Who may report what").
 * Every agent shares the join token, so the token alone proves nothing about a job: a report about
 * (job, generation, rank) counts only from the agent stream that holds that rank, and its numbers
 * must be ones a real trainer could send. What fails is dropped, counted in
 * byol_rejected_reports_total{kind, reason}, and logged as a rate-limited warning.
 */
import type {GenerationRun, RankSlot} from '../rendezvous/generation-run';
import type {CoordinatorContext} from './context';

export type ReportKind = 'rendezvous' | 'trainer' | 'progress' | 'checkpoint' | 'event';

export interface Refusal {reason: string; detail: string}

const TRUST_ADVICE = 'if this is not a misconfigured agent (two agents with one --agent-id), someone holds the agent token: rotate it';
export const MAX_RESULTS = 16;
const MAX_TEXT = 2000;

export function refuse(ctx: Pick<CoordinatorContext, 'metrics' | 'warnLimited'>, kind: ReportKind, agentId: string, r: Refusal, fields: Record<string, unknown> = {}): void {
  ctx.metrics.rejectedReports.inc({kind, reason: r.reason});
  ctx.warnLimited.warn(`${kind}/${r.reason}`, {kind, reason: r.reason, agentId, ...fields},
    `${kind} report from agent ${agentId} dropped: ${r.detail}; nothing changed (${TRUST_ADVICE})`);
}

/** The rank's slot when `agentId` holds it; otherwise why not. */
export function heldSlot(run: GenerationRun, agentId: string, rank: number): RankSlot | Refusal {
  const slot = run.ranks[rank];
  if (!slot) return {reason: 'unknown_rank', detail: `generation ${run.generation} of ${run.jobId} has no rank ${rank}`};
  if (slot.agentId !== agentId) {
    return {reason: 'not_holder', detail: `rank ${rank} of ${run.jobId} generation ${run.generation} is held by ${slot.agentId}`};
  }
  return slot;
}

export const isRefusal = (x: unknown): x is Refusal => typeof x === 'object' && x !== null && 'reason' in x && 'detail' in x;

/** Steps count completed optimizer steps: 0..K. */
export function stepProblem(run: GenerationRun, step: number): Refusal | null {
  const K = run.setup.schedule.totalSteps;
  if (Number.isSafeInteger(step) && step >= 0 && step <= K) return null;
  return {reason: 'step_out_of_range', detail: `step ${step} is outside [0, ${K}] for ${run.jobId}`};
}

/** Results (e.g. knn_top1): only rank 0 evaluates; a few finite numbers with short names. */
export function resultsProblem(rank: number, results: Record<string, number> | undefined): Refusal | null {
  const entries = Object.entries(results ?? {});
  if (entries.length === 0) return null;
  if (rank !== 0) return {reason: 'results_not_rank0', detail: `rank ${rank} sent results; only rank 0 evaluates`};
  if (entries.length > MAX_RESULTS || entries.some(([k, v]) => k.length > 64 || !Number.isFinite(v))) {
    return {reason: 'implausible_results', detail: `results must be at most ${MAX_RESULTS} finite numbers with short names`};
  }
  return null;
}

/** host:port of a TCPStore: a host name or IP literal and a port in 1..65535. */
export function addressProblem(address: string): Refusal | null {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]{1,253}):(\d{1,5})$/.exec(address);
  if (m && Number(m[2]) >= 1 && Number(m[2]) <= 65535) return null;
  return {reason: 'bad_address', detail: `rendezvous address ${JSON.stringify(address.slice(0, 100))} is not host:port`};
}

/** Text for the job's events: bounded, and without terminal control characters. */
export function cleanText(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.slice(0, MAX_TEXT).replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '?');
}
