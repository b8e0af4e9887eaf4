// The job page's non-plot parts: header stats, health, generations timeline, checkpoints, events, spec.
import {duration, esc, fmt} from '/ui/api.js';

export function renderStats(el, j) {
  el.innerHTML = `<span class="state-${esc(j.state)}"><b>${esc(j.state)}</b></span>` +
    `<span>step ${j.step}/${j.totalSteps}</span><span>epoch ${fmt(j.epoch, 2)}</span><span>loss ${fmt(j.loss, 4)}</span>` +
    `<span>LR ${fmt(j.lr, 5)}</span><span>tau ${fmt(j.tau, 5)}</span><span>${fmt(j.imagesPerSec, 1)} img/s</span>` +
    `<span>ETA ${duration(j.etaSeconds)}</span><span>generation ${j.generation}</span><span>${j.workers.length} worker(s)</span>` +
    (j.message ? `<div class="${j.state === 'FAILED' ? 'error' : 'muted'}">${esc(j.message)}</div>` : '') +
    (j.result ? `<div>result: ${Object.entries(j.result).map(([k, v]) => `${esc(k)} ${typeof v === 'number' ? fmt(v, 4) : esc(v)}`).join(', ')}</div>` : '');
}

export function renderHealth(el, j, alarmEvents) {
  const h = j.health;
  const alarms = h ? h.alarms : alarmEvents;
  el.innerHTML = (h ? `<div class="stats"><span>cos(online, target) ${fmt(h.cosineSimilarity, 4)}</span>` +
    `<span>z_std ${fmt(h.zStd, 4)} (collapse below ${h.collapseZStd.toPrecision(3)})</span>` +
    `<span>rank skew ${fmt(h.rankSkew, 2)}${h.slowestRank !== null ? ` (slowest: rank ${h.slowestRank})` : ''}</span>` +
    `<span>stalled ranks ${h.stalledRanks.length ? h.stalledRanks.join(', ') : 'none'}</span></div>` : '<div class="muted">no live telemetry</div>') +
    alarms.map((a) => `<div class="alarm" data-alarm="${esc(a.kind)}"><b>${esc(a.kind)}</b> since step ${a.sinceStep}: ${esc(a.message)}</div>`).join('');
}

const genClass = (g) => (g.endReason === null ? 'gen-open' : g.endReason === 'completed' ? 'gen-completed'
  : ['collapse', 'bad-input', 'cancelled'].includes(g.endReason) ? 'gen-failed' : 'gen-fault');

export function renderGenerations(el, j) {
  const total = Math.max(1, j.totalSteps);
  const bar = j.generations.map((g) => {
    const end = g.endStep ?? j.step;
    return `<div class="${genClass(g)}" title="generation ${g.generation}: steps ${g.startStep}-${end} ${esc(g.endReason ?? 'running')}" ` +
      `style="left:${(100 * g.startStep) / total}%;width:${Math.max(0.5, (100 * (end - g.startStep)) / total)}%">${g.generation}</div>`;
  }).join('');
  el.innerHTML = `<div class="timeline">${bar}</div><table><thead><tr><th>Gen</th><th>Ranks</th><th>Steps</th><th>Start</th>` +
    '<th>End</th><th>Reason</th><th>Steps lost</th><th>Recovery</th><th>Agents</th></tr></thead><tbody>' +
    j.generations.map((g) => `<tr data-generation="${g.generation}" data-reason="${esc(g.endReason ?? '')}"><td>${g.generation}</td>` +
      `<td>${g.worldSize}</td><td>${g.startStep}-${g.endStep ?? '…'}</td><td>${new Date(g.startedAtMs).toLocaleTimeString()}</td>` +
      `<td>${g.endedAtMs ? new Date(g.endedAtMs).toLocaleTimeString() : '-'}</td><td>${esc(g.endReason ?? 'running')}</td>` +
      `<td>${g.stepsLost}</td><td>${g.recoverySeconds === null ? '-' : `${g.recoverySeconds.toFixed(1)} s`}</td>` +
      `<td>${esc(g.agents.join(', '))}</td></tr>`).join('') + '</tbody></table>';
}

export function renderCheckpoints(el, cks) {
  el.innerHTML = cks.length === 0 ? '<p class="muted">no checkpoints yet</p>' :
    '<table><thead><tr><th>Step</th><th>Size</th><th>State</th><th>sha256</th><th>Written</th></tr></thead><tbody>' +
    cks.map((c) => `<tr data-step="${c.step}"><td>${c.step}</td><td>${(c.bytes / 2 ** 20).toFixed(2)} MiB</td><td>${esc(c.state)}</td>` +
      `<td title="${esc(c.sha256)}"><code>${esc(c.sha256.slice(0, 16))}…</code></td><td>${new Date(c.createdAtMs).toLocaleTimeString()}</td></tr>`).join('') +
    '</tbody></table>';
}

export function appendEvents(el, events) {
  const atBottom = el.scrollTop + el.clientHeight >= el.scrollHeight - 4;
  el.insertAdjacentHTML('beforeend', events.map((e) =>
    `<div class="lv-${esc(e.level)}" data-type="${esc(e.type)}">${new Date(e.tMs).toLocaleTimeString()} ${esc(e.level)} ${esc(e.type)}: ${esc(e.message)}</div>`).join(''));
  if (atBottom) el.scrollTop = el.scrollHeight;
}

export function renderSpec(el, j) {
  el.innerHTML = `<div class="grid"><div><h3>Resolved spec</h3><pre>${esc(JSON.stringify(j.spec, null, 2))}</pre></div>` +
    `<div><h3>Plan (for the spec's ${j.spec.spec.resources?.workers ?? '-'} rank(s); a smaller generation re-plans a and b)</h3>` +
    `<pre>${esc(JSON.stringify(j.schedule, null, 2))}</pre></div></div>`;
}
