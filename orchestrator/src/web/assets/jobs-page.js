// Jobs list: state, step/total, loss, img/s, ETA, generation, workers; refreshed every 2 s.
import {duration, esc, fmt, getJson} from '/ui/api.js';

export async function jobsPage(root) {
  root.innerHTML = '<h1>Jobs</h1><table id="jobs"><thead><tr><th>Job</th><th>State</th><th>Step</th><th>Loss</th>' +
    '<th>img/s</th><th>ETA</th><th>Gen</th><th>Workers</th><th>Health</th><th>Submitted</th></tr></thead><tbody></tbody></table>';
  const body = root.querySelector('tbody');
  const render = async () => {
    const jobs = await getJson('/v1/jobs');
    body.innerHTML = jobs.length === 0 ? '<tr><td colspan="10" class="muted">no jobs yet: byolctl submit job.yaml</td></tr>' : jobs.map((j) => {
      const alarms = (j.health?.alarms ?? []).map((a) => a.kind).join(', ');
      return `<tr data-job="${esc(j.id)}"><td><a href="#/job/${encodeURIComponent(j.id)}">${esc(j.id)}</a></td>` +
        `<td class="state-${esc(j.state)}">${esc(j.state)}</td><td>${j.step}/${j.totalSteps}</td><td>${fmt(j.loss, 4)}</td>` +
        `<td>${fmt(j.imagesPerSec, 1)}</td><td>${duration(j.etaSeconds)}</td><td>${j.generation}</td><td>${j.workers.length}</td>` +
        `<td class="${alarms ? 'error' : 'ok'}">${alarms ? esc(alarms) : (j.health ? 'ok' : '')}</td>` +
        `<td>${new Date(j.submittedAtMs).toLocaleString()}</td></tr>`;
    }).join('');
  };
  await render();
  const timer = setInterval(() => render().catch(() => undefined), 2000);
  return () => clearInterval(timer);
}
