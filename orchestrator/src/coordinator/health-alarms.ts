/**
 * What a health alarm does (issue 12): a job event always; with `spec.health.onCollapse: stop`, a
 * collapse also ends the job FAILED with the alarm as its reason. Prometheus reads the monitor itself.
 */
import type {HealthAlarm} from '../domain/types';
import {endGeneration, finishJob, type EndContext} from './lifecycle';

export function onHealthAlarm(ctx: EndContext, jobId: string, alarm: HealthAlarm, raised: boolean): void {
  if (!ctx.store.getJob(jobId)) return;
  if (!raised) {
    ctx.events.emit(jobId, 'info', 'health', `${alarm.kind} alarm cleared`, {alarm: alarm.kind, cleared: true});
    return;
  }
  ctx.events.emit(jobId, 'warn', 'health', alarm.message, {alarm: alarm.kind, sinceStep: alarm.sinceStep});
  if (alarm.kind !== 'collapse' || ctx.health.policy(jobId)?.onCollapse !== 'stop') return;
  const reason = `stopped by spec.health.onCollapse=stop: ${alarm.message}`;
  const run = ctx.live.runOf(jobId);
  if (run) endGeneration(ctx, run, 'collapse', reason, 'FAILED');
  else finishJob(ctx, jobId, 'FAILED', reason);
}
