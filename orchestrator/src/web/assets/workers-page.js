// Workers: agents, their devices, versions and last heartbeat; refreshed every 2 s.
import {esc, getJson} from '/ui/api.js';

export async function workersPage(root) {
  root.innerHTML = '<h1>Workers</h1><table id="workers"><thead><tr><th>Agent</th><th>Host</th><th>Connected</th>' +
    '<th>Devices</th><th>Assigned</th><th>Versions</th><th>Last heartbeat</th></tr></thead><tbody></tbody></table>';
  const body = root.querySelector('tbody');
  const render = async () => {
    const workers = await getJson('/v1/workers');
    body.innerHTML = workers.length === 0 ? '<tr><td colspan="7" class="muted">no agents connected</td></tr>' : workers.map((w) =>
      `<tr data-agent="${esc(w.agentId)}"><td>${esc(w.agentId)}</td><td>${esc(w.host)}</td><td>${w.connected ? 'yes' : 'no'}</td>` +
      `<td class="wrap">${w.devices.map((d) => `${esc(d.id)} (${esc(d.name || d.kind)}${d.memoryBytes ? `, ${(d.memoryBytes / 2 ** 30).toFixed(1)} GiB` : ''})`).join('<br>')}</td>` +
      `<td>${Object.entries(w.assigned).map(([dev, a]) => `${esc(dev)}: <a href="#/job/${encodeURIComponent(a.jobId)}">${esc(a.jobId)}</a> rank ${a.rank}`).join('<br>') || '-'}</td>` +
      `<td class="wrap">${Object.entries(w.versions).map(([k, v]) => `${esc(k)} ${esc(v)}`).join(', ')}</td>` +
      `<td>${((Date.now() - w.lastHeartbeatMs) / 1000).toFixed(1)} s ago</td></tr>`).join('');
  };
  await render();
  const timer = setInterval(() => render().catch(() => undefined), 2000);
  return () => clearInterval(timer);
}
