/**
 * startCoordinator: opens the store, binds gRPC (agents) and ZeroMQ (telemetry), restores jobs,
 * and runs the placement rounds and the heartbeat watchdog. Everything stops with close().
 */
import {existsSync} from 'node:fs';
import {hostname} from 'node:os';
import {join, resolve} from 'node:path';
import type {Registry} from 'prom-client';
import type {Logger} from 'pino';
import {AgentCredentials} from '../agents/agent-credentials';
import {AgentRegistry} from '../agents/agent-registry';
import {CheckpointRegistry} from '../checkpoints/checkpoint-registry';
import type {CoordinatorApi} from '../domain/coordinator-api';
import type {Launcher} from '../domain/launcher';
import {tokenProblem} from '../domain/token-rules';
import {createLauncher, type LauncherName} from '../launchers/create-launcher';
import {createLogger} from '../log/logger';
import {RateLimitedWarn} from '../log/rate-limited-warn';
import {openStore} from '../store';
import {HealthMonitor} from '../health/health-monitor';
import {registerHealthMetrics} from '../health/health-metrics';
import {CoordinatorMetrics} from '../telemetry/prom-metrics';
import {TelemetryIngest} from '../telemetry/ingest';
import {TelemetryKeys} from '../telemetry/telemetry-keys';
import {startGrpcServer} from '../transport/grpc-server';
import {type GrpcTlsOptions, plaintextListenRefusal} from '../transport/grpc-tls';
import type {LocalAgentTls} from '../launchers/local';
import {agentLost, agentStreamHandler} from './agent-sessions';
import type {CoordinatorContext, CoordinatorKnobs} from './context';
import {Coordinator} from './coordinator';
import {EventBus} from './event-bus';
import {LiveState} from './live-state';
import {onHealthAlarm} from './health-alarms';
import {restoreFromStore} from './restore';
import {placementRound} from './placement-round';

export interface CoordinatorOptions {
  /** SQLite file. Default `./.byol/store.db`. */
  storePath?: string;
  /** Checkpoints go under `<checkpointRoot>/<jobId>/`. Default `./.byol/checkpoints`. */
  checkpointRoot?: string;
  /** Specs may only name data under these folders; relative paths resolve against the first. Default: none (any path). */
  dataRoots?: string[];
  /** Token agents present as `authorization: Bearer <token>`. Required. */
  agentToken: string;
  /** 'local' (spawn agents here), 'external' (they come by themselves), 'kubernetes', or a Launcher. Default 'local'. */
  launcher?: LauncherName | Launcher;
  /** gRPC bind host. Default '127.0.0.1'; beyond loopback needs grpcTls or grpcInsecure. */
  grpcHost?: string;
  /** TLS for the agent service (mTLS when `clientCa` is set). Without it gRPC may only listen on loopback, unless grpcInsecure. */
  grpcTls?: GrpcTlsOptions;
  /** Allow plaintext gRPC beyond loopback (an explicit choice of the user). Default false. */
  grpcInsecure?: boolean;
  /** How agents the local launcher starts verify the coordinator when grpcTls is on. */
  localAgentTls?: LocalAgentTls;
  /** File holding the secret that derives per-agent session keys (created 0600). Default `<storePath>.session-secret`. */
  sessionSecretPath?: string;
  /** gRPC port; 0 = any free port. Default 50051. */
  grpcPort?: number;
  /** Telemetry (ZeroMQ PULL) port; 0 = any. Default 5555. */
  telemetryPort?: number;
  /** Host agents and trainers use to reach this coordinator. Default: 127.0.0.1 when bound to loopback, else the hostname. */
  advertiseHost?: string;
  /** Heartbeat interval agents are told to use. Default 1000. */
  heartbeatIntervalMs?: number;
  /** A stream silent this long means the agent is lost. Default 5000. */
  heartbeatTimeoutMs?: number;
  /** Aggregated metric points kept per job. Default 100000. */
  metricsMaxPoints?: number;
  /** How long rank 0's agent has to host the rendezvous store. Default 60000. */
  rendezvousTimeoutMs?: number;
  /** After a restart, how long running generations wait for their agents. Default 3 x heartbeatTimeoutMs. */
  reattachGraceMs?: number;
  /** How long a device waits for its aborted trainer to report its end before reuse. Default 15000. */
  settleTimeoutMs?: number;
  /** Python for local agents. Default `<repo>/.venv/bin/python` if present, else python3. */
  pythonBin?: string;
  /** Default: createLogger(). */
  logger?: Logger;
}

export interface RunningCoordinator {
  api: CoordinatorApi;
  /** host:port agents dial. */
  grpcAddress: string;
  /** tcp://host:port trainers push metrics to. */
  telemetryAddress: string;
  registry: Registry;
  close(): Promise<void>;
}

const REPO_ROOT = resolve(__dirname, '..', '..', '..', ...(__dirname.includes(`${join('dist', 'orchestrator')}`) ? ['..'] : []));

export function defaultPythonBin(): string {
  const venv = join(REPO_ROOT, '.venv', 'bin', 'python');
  return existsSync(venv) ? venv : 'python3';
}

export async function startCoordinator(options: CoordinatorOptions): Promise<RunningCoordinator> {
  if (!options.agentToken) throw new Error('agentToken is required (set BYOL_AGENT_TOKEN); agents must present it to join');
  const weak = tokenProblem(options.agentToken, 'the agent token');
  if (weak) throw new Error(weak);
  const log = options.logger ?? createLogger();
  const heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 5000;
  const knobs: CoordinatorKnobs = {
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? 1000,
    heartbeatTimeoutMs,
    metricsMaxPoints: options.metricsMaxPoints ?? 100_000,
    checkpointRoot: resolve(options.checkpointRoot ?? join('.byol', 'checkpoints')),
    dataRoots: (options.dataRoots ?? []).map((r) => resolve(r)),
    rendezvousTimeoutMs: options.rendezvousTimeoutMs ?? 60_000,
    reattachGraceMs: options.reattachGraceMs ?? 3 * heartbeatTimeoutMs,
    settleTimeoutMs: options.settleTimeoutMs ?? 15_000,
    maxFruitlessGenerations: 5,
  };
  const grpcHost = options.grpcHost ?? '127.0.0.1';
  const refusal = plaintextListenRefusal(grpcHost, options.grpcPort ?? 50051, options.grpcTls, options.grpcInsecure ?? false);
  if (refusal) throw new Error(refusal); // before anything is opened or spawned
  const advertise = options.advertiseHost ?? (grpcHost === '127.0.0.1' || grpcHost === 'localhost' ? '127.0.0.1' : hostname());
  const pythonBin = options.pythonBin ?? defaultPythonBin();
  const storePath = options.storePath ?? join('.byol', 'store.db');
  if (options.grpcTls && options.launcher === 'local' && !options.localAgentTls) {
    throw new Error('grpcTls with the local launcher needs localAgentTls (the CA file local agents verify the coordinator with)');
  }
  const store = openStore(storePath);
  let credentials: AgentCredentials;
  let keys: TelemetryKeys;
  try {
    credentials = options.sessionSecretPath || storePath !== ':memory:'
      ? AgentCredentials.fromFile(options.sessionSecretPath ?? `${storePath}.session-secret`)
      : AgentCredentials.ephemeral();
    // Next to the store, so a restarted coordinator verifies the telemetry of the trainers it re-attaches.
    keys = storePath === ':memory:' ? TelemetryKeys.random() : TelemetryKeys.fromFile(`${storePath}.telemetry-secret`);
  } catch (err) {
    store.close();
    throw err;
  }
  const launcher = typeof options.launcher === 'object'
    ? options.launcher
    : await createLauncher(options.launcher ?? 'local', {pythonBin, agentToken: options.agentToken, logger: log, cwd: REPO_ROOT,
      localAgentTls: options.grpcTls ? options.localAgentTls : undefined});

  let placementPending = false;
  let closed = false;
  const requestPlacement = () => {
    if (placementPending || closed) return;
    placementPending = true;
    setImmediate(() => {
      placementPending = false;
      if (closed) return;
      try {
        placementRound(ctx);
      } catch (err) {
        log.error({err}, 'placement round failed; will retry on the next event');
      }
    });
  };
  const telemetry = new TelemetryIngest({
    host: grpcHost, port: options.telemetryPort ?? 5555, logger: log, keys,
    onBatch: (jobId, points) => {
      if (!store.getJob(jobId)) return;
      store.appendMetrics(jobId, points, knobs.metricsMaxPoints);
      for (const p of points) metrics.observe(jobId, p);
      health.observe(jobId, points);
    },
  });
  const health = new HealthMonitor((jobId, alarm, raised) => onHealthAlarm(ctx, jobId, alarm, raised));
  const agents = new AgentRegistry();
  const metrics = new CoordinatorMetrics(
    () => ({...telemetry.aggregator.counters, malformed: telemetry.malformed, unsigned: telemetry.unsigned, badMac: telemetry.badMac}),
    () => agents.list().filter((a) => a.connected).length,
    () => {
      const out: Record<string, number> = {};
      for (const j of store.listJobs()) out[j.state] = (out[j.state] ?? 0) + 1;
      return out;
    },
  );
  const ctx: CoordinatorContext = {
    store, launcher, log, knobs, agents, credentials, telemetry, metrics, requestPlacement, health,
    warnLimited: new RateLimitedWarn(log.child({module: 'reports'})),
    events: new EventBus(store, log.child({module: 'jobs'})),
    checkpoints: new CheckpointRegistry(store, log),
    live: new LiveState(),
    grpcAddress: '', telemetryAddress: '', closing: false,
  };

  let grpc;
  try {
    const tele = await ctx.telemetry.start();
    ctx.telemetryAddress = `tcp://${advertise}:${ctx.telemetry.port}`;
    grpc = await startGrpcServer({host: grpcHost, port: options.grpcPort ?? 50051, agentToken: options.agentToken, logger: log,
      handler: agentStreamHandler(ctx), tls: options.grpcTls, insecure: options.grpcInsecure});
    ctx.grpcAddress = `${advertise}:${grpc.port}`;
    log.debug({tele}, 'telemetry bound');
  } catch (err) {
    await ctx.telemetry.close().catch(() => undefined);
    store.close();
    throw err;
  }

  launcher.onLoss((loss) => {
    if (loss.agentId && ctx.agents.get(loss.agentId)) agentLost(ctx, loss.agentId, `launcher: ${loss.reason}`);
    else ctx.requestPlacement();
  });
  registerHealthMetrics(metrics.registry, health, () => health.jobIds());
  restoreFromStore(ctx);
  const watchdog = setInterval(() => {
    for (const id of ctx.agents.silent(knobs.heartbeatTimeoutMs)) agentLost(ctx, id, `no message for ${knobs.heartbeatTimeoutMs} ms`);
    health.tick(Date.now(), (jobId) => {
      const run = ctx.live.runOf(jobId);
      return run && run.firstProgressSeen && run.phase !== 'ended' ? run.ranks.length : null;
    });
    ctx.requestPlacement();
  }, Math.max(50, Math.min(knobs.heartbeatIntervalMs, knobs.heartbeatTimeoutMs / 4)));
  watchdog.unref();
  ctx.requestPlacement();
  log.info({grpc: ctx.grpcAddress, telemetry: ctx.telemetryAddress, launcher: launcher.name}, 'coordinator ready');

  const grpcServer = grpc;
  return {
    api: new Coordinator(ctx, () => !closed),
    grpcAddress: ctx.grpcAddress,
    telemetryAddress: ctx.telemetryAddress,
    registry: ctx.metrics.registry,
    async close() {
      if (closed) return;
      closed = true;
      ctx.closing = true;
      clearInterval(watchdog);
      await grpcServer.close();
      await ctx.telemetry.close();
      await launcher.close();
      store.close();
      log.info('coordinator stopped');
    },
  };
}
