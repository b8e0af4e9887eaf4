/**
 * Which server a command talks to. `--server` or BYOL_SERVER: that one. Otherwise an embedded
 * coordinator already running from this folder (found through <home>/server.json), else a new embedded
 * coordinator in this process with the REST API on an ephemeral loopback port. The CLI only ever uses the
 * REST client; it never speaks gRPC or opens the store itself.
 */
import {randomBytes} from 'node:crypto';
import {existsSync, mkdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {join, resolve} from 'node:path';
import pino from 'pino';
import {startApiServer} from '../api';
import {ByolClient} from '../client';
import {defaultPythonBin, startCoordinator} from '../coordinator/start';
import {UsageError} from './exit-codes';

export interface GlobalArgs {
  server?: string;
  token?: string;
  /** --token-file: read when --token (BYOL_API_TOKEN) is not set. */
  tokenFile?: string;
  home: string;
  debug: boolean;
  json: boolean;
}

export interface Target {
  client: ByolClient;
  /** True when this process runs the coordinator (it stops with `close`). */
  embedded: boolean;
  /** The coordinator runs from this folder (here or in another byolctl), so local paths mean the same to it. */
  local: boolean;
  /** The dashboard of a coordinator run from this folder (its REST URL), printed by `submit`. */
  dashboardUrl?: string;
  close(): Promise<void>;
}

interface ServerFile {
  url: string;
  pid: number;
}

function serverFile(home: string): string {
  return join(home, 'server.json');
}

/** The URL of a live embedded coordinator started from this folder, if any. */
async function runningEmbedded(home: string): Promise<string | undefined> {
  const f = serverFile(home);
  if (!existsSync(f)) return undefined;
  try {
    const {url, pid} = JSON.parse(readFileSync(f, 'utf8')) as ServerFile;
    process.kill(pid, 0); // throws when that process is gone
    const res = await fetch(`${url}/healthz`, {signal: AbortSignal.timeout(2000)});
    return res.ok ? url : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Opens the target. `launcher` applies to a new embedded coordinator: 'local' for submit (it trains
 * here), 'external' for the other commands so that looking at the store never starts agents.
 */
/** The API token: --token / BYOL_API_TOKEN, else the first line of --token-file / BYOL_API_TOKEN_FILE. */
function clientToken(g: GlobalArgs): string | undefined {
  if (g.token || !g.tokenFile) return g.token;
  try {
    return readFileSync(g.tokenFile, 'utf8').replace(/\r?\n$/, '') || undefined;
  } catch (err) {
    throw new UsageError(`--token-file ${g.tokenFile}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

export async function openTarget(g: GlobalArgs, launcher: 'local' | 'external'): Promise<Target> {
  const server = g.server ?? (process.env.BYOL_SERVER || undefined);
  const token = clientToken(g);
  if (server) return {client: new ByolClient({server, token}), embedded: false, local: false, close: async () => undefined};
  const home = resolve(g.home);
  const running = await runningEmbedded(home);
  if (running) return {client: new ByolClient({server: running, token}), embedded: false, local: true, dashboardUrl: running, close: async () => undefined};

  mkdirSync(home, {recursive: true, mode: 0o700});
  // Logs go to stderr so stdout stays the command's output; --debug shows everything.
  const logger = pino({level: g.debug ? 'debug' : (process.env.BYOL_LOG_LEVEL ?? 'warn')}, pino.destination(2));
  const pythonBin = process.env.BYOL_PYTHON || defaultPythonBin();
  const coordinator = await startCoordinator({
    storePath: join(home, 'store.db'), checkpointRoot: join(home, 'checkpoints'), launcher,
    agentToken: randomBytes(16).toString('hex'), grpcHost: '127.0.0.1', grpcPort: 0, telemetryPort: 0,
    pythonBin, logger,
  });
  let rest;
  try {
    rest = await startApiServer({api: coordinator.api, logger, host: '127.0.0.1', port: 0, registry: coordinator.registry, pythonBin});
  } catch (err) {
    await coordinator.close();
    throw err;
  }
  const mine = launcher === 'local';
  if (mine) writeFileSync(serverFile(home), JSON.stringify({url: rest.url, pid: process.pid} satisfies ServerFile));
  const api = rest;
  return {
    client: new ByolClient({server: api.url}),
    embedded: true,
    local: true,
    dashboardUrl: api.url,
    async close() {
      if (mine) rmSync(serverFile(home), {force: true});
      await api.close();
      await coordinator.close();
    },
  };
}
