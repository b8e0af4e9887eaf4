/**
 * The dashboard's files: its own pages from web/assets (in the source tree, next to this file or, for the
 * built copy under dist/, in the repository), and uPlot from node_modules. No CDN: the page loads nothing else.
 */
import {existsSync, readFileSync} from 'node:fs';
import {extname, join, resolve} from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.png': 'image/png', '.svg': 'image/svg+xml',
};

function assetsDir(): string {
  const candidates = [join(__dirname, 'assets'), resolve(__dirname, '..', '..', '..', '..', 'orchestrator', 'src', 'web', 'assets')];
  const found = candidates.find((d) => existsSync(join(d, 'index.html')));
  if (!found) throw new Error(`dashboard assets not found in ${candidates.join(' or ')}; reinstall the package`);
  return found;
}

export interface Asset {
  body: Buffer;
  type: string;
}

/** Loads every file once, at server start: a request never touches the disk and names only known files. */
export function loadAssets(): Map<string, Asset> {
  const dir = assetsDir();
  const files = ['index.html', 'style.css', 'app.js', 'api.js', 'plots.js', 'jobs-page.js', 'job-page.js', 'job-tables.js', 'workers-page.js'];
  const out = new Map<string, Asset>();
  for (const f of files) out.set(f, {body: readFileSync(join(dir, f)), type: TYPES[extname(f)] ?? 'application/octet-stream'});
  const uplot = require.resolve('uplot/dist/uPlot.iife.min.js');
  out.set('uPlot.iife.min.js', {body: readFileSync(uplot), type: TYPES['.js']});
  out.set('uPlot.min.css', {body: readFileSync(join(uplot, '..', 'uPlot.min.css')), type: TYPES['.css']});
  return out;
}
