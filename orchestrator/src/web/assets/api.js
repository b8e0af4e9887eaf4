// Talking to the coordinator: JSON reads with the bearer token when one is set, the token prompt, and
// server-sent events read with fetch (EventSource cannot send an Authorization header).
const KEY = 'byol-api-token';

export const token = () => sessionStorage.getItem(KEY) || '';
const headers = (extra = {}) => (token() ? {...extra, authorization: `Bearer ${token()}`} : extra);

let asking = null;

/** Shows the token form until the server accepts a token (checked on /ui/api/auth). */
export function askToken(message = '') {
  if (asking) return asking;
  const form = document.getElementById('token-form');
  const input = document.getElementById('token-input');
  const error = document.getElementById('token-error');
  form.hidden = false;
  error.textContent = message;
  asking = new Promise((resolve) => {
    form.onsubmit = async (e) => {
      e.preventDefault();
      const r = await fetch('/ui/api/auth', {headers: {authorization: `Bearer ${input.value.trim()}`}});
      if (!r.ok) {
        error.textContent = 'the server refused this token';
        return;
      }
      sessionStorage.setItem(KEY, input.value.trim());
      form.hidden = true;
      asking = null;
      resolve();
    };
  });
  input.focus();
  return asking;
}

/** Asks for the token first where the server needs one. */
export async function ensureSession() {
  const s = await getJson('/ui/api/session');
  if (s.tokenRequired && !token()) await askToken();
}

export async function getJson(path) {
  const r = await fetch(path, {headers: headers()});
  if (r.status === 401) {
    await askToken('the server needs a (valid) token');
    return getJson(path);
  }
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status} ${(await r.text()).slice(0, 200)}`);
  return r.json();
}

/** Reads a text/event-stream with fetch; calls onEvent(name, data) until the stream ends or signal aborts. */
export async function readEvents(path, onEvent, signal) {
  const r = await fetch(path, {headers: headers({accept: 'text/event-stream'}), signal});
  if (!r.ok || !r.body) throw new Error(`${path}: HTTP ${r.status}`);
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    buf += value;
    let cut;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let name = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
      }
      if (data.length) onEvent(name, JSON.parse(data.join('\n')));
    }
  }
}

export const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c]));
export const fmt = (v, d = 3) => (v === null || v === undefined || !Number.isFinite(v) ? '-' : Number(v).toFixed(d));
export function duration(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return '-';
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}
