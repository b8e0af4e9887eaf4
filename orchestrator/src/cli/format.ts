/** Human-readable renderings of jobs, events and progress. */
import type {JobView} from '../domain/coordinator-api';
import type {JobEvent} from '../domain/types';

/**
 * Text from agents and trainers, made safe for a terminal: control characters (ESC sequences that move
 * the cursor, retitle the window or fake a line, C1 codes, DEL) are shown as \xNN instead of acting.
 */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

export function duration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '-';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

function num(v: number | null, digits: number): string {
  return v === null ? '-' : v.toFixed(digits);
}

/** "step 120/780  loss 3.1234  tau 0.99012  lr 0.12340  img/s 52.1  ETA 12m30s" */
export function progressLine(j: JobView): string {
  return [
    `${j.state.padEnd(10)} step ${j.step}/${j.totalSteps}`,
    `loss ${num(j.loss, 4)}`,
    `tau ${num(j.tau, 5)}`,
    `lr ${j.lr === null ? '-' : j.lr.toPrecision(4)}`,
    `img/s ${num(j.imagesPerSec, 1)}`,
    `ETA ${duration(j.etaSeconds)}`,
  ].join('  ');
}

export function eventLine(ev: JobEvent): string {
  const t = new Date(ev.tMs).toISOString().replace('T', ' ').slice(0, 19);
  return `${t}  ${printable(ev.level.toUpperCase().padEnd(5))} ${printable(ev.type.padEnd(10))} ${printable(ev.message)}`;
}

export function resultLine(j: JobView): string {
  const parts = Object.entries(j.result ?? {}).map(([k, v]) => `${k}=${typeof v === 'number' ? Number(v.toFixed(4)) : JSON.stringify(v)}`);
  const line = `job ${j.id} ${j.state}${j.message ? `: ${printable(j.message)}` : ''}${parts.length ? `  result: ${parts.join(' ')}` : ''}`;
  const r = j.result ?? {};
  if (typeof r.knnTop1 !== 'number') return line;
  const pct = (v: unknown) => (typeof v === 'number' ? `${(100 * v).toFixed(2)}%` : 'not measured');
  const against = 'knnTop1RandomInit' in r || 'knnTop1RawPixels' in r
    ? ` (same kNN before training: random init ${pct(r.knnTop1RandomInit)}, raw pixels ${pct(r.knnTop1RawPixels)})`
    : '';
  return `${line}\nkNN top-1 accuracy of the trained encoder: ${pct(r.knnTop1)}${against}`;
}

export function jobDetails(j: JobView): string {
  const lines = [
    `id:          ${j.id}`,
    `name:        ${j.name} (priority ${j.priority})`,
    `state:       ${j.state}${j.message ? ` (${printable(j.message)})` : ''}`,
    `progress:    ${progressLine(j)}`,
    `epoch:       ${j.epoch}`,
    `generation:  ${j.generation}`,
    `workers:     ${j.workers.length === 0 ? '-' : j.workers.map((w) => printable(`rank ${w.rank} ${w.agentId}@${w.host}/${w.deviceId}`)).join(', ')}`,
    `schedule:    K ${j.schedule.totalSteps}, warmup ${j.schedule.warmupSteps}, peak LR ${j.schedule.peakLr}, tau base ${j.schedule.tauBase}${j.schedule.tauSchedule === 'constant' ? ' (constant)' : ''}, B ${j.schedule.globalBatch}`,
    `submitted:   ${new Date(j.submittedAtMs).toISOString()}`,
  ];
  if (j.result) lines.push(`result:      ${JSON.stringify(j.result)}`);
  for (const g of j.generations) {
    lines.push(`  gen ${g.generation}: W=${g.worldSize} steps ${g.startStep}-${g.endStep ?? '...'}${g.endReason ? ` (${g.endReason})` : ''}` +
      `${g.stepsLost ? `, ${g.stepsLost} steps lost` : ''}${g.recoverySeconds !== null ? `, recovered in ${g.recoverySeconds.toFixed(1)} s` : ''}`);
  }
  return lines.join('\n') + '\n';
}
