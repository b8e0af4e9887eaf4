/** byolctl serve: the coordinator (gRPC for agents, ZeroMQ telemetry, store, launcher) plus the REST API. */
import {randomBytes} from 'node:crypto';
import {readFileSync} from 'node:fs';
import {join} from 'node:path';
import type {Argv, CommandModule} from 'yargs';
import {startApiServer} from '../../api';
import {defaultPythonBin, startCoordinator} from '../../coordinator/start';
import {createLogger} from '../../log/logger';
import {UsageError} from '../exit-codes';
import {type CliContext, runCommand} from '../run';
import type {GlobalArgs} from '../target';

interface Args extends GlobalArgs {
  host: string;
  port: number;
  grpcHost: string;
  grpcPort: number;
  telemetryPort: number;
  advertiseHost?: string;
  store?: string;
  checkpointRoot?: string;
  dataRoot: string[];
  launcher: 'local' | 'external' | 'kubernetes';
  agentToken?: string;
  apiToken?: string;
  python?: string;
  tlsCert?: string;
  tlsKey?: string;
}

const env = process.env;
const int = (v: string | undefined, d: number) => (v === undefined || v === '' ? d : Number(v));

function readPem(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new UsageError(`${flag} ${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

export function serveCommand(ctx: CliContext): CommandModule<GlobalArgs, Args> {
  return {
    command: 'serve',
    describe: 'Run the coordinator and the REST API until SIGINT/SIGTERM',
    builder: (y) => y
      .option('host', {type: 'string', default: env.BYOL_HOST ?? '127.0.0.1', describe: 'REST listen address (BYOL_HOST); beyond loopback needs --api-token'})
      .option('port', {type: 'number', default: int(env.BYOL_PORT, 8080), describe: 'REST port, 0 = any (BYOL_PORT)'})
      .option('grpc-host', {type: 'string', default: env.BYOL_GRPC_HOST ?? '0.0.0.0', describe: 'gRPC and telemetry listen address (BYOL_GRPC_HOST)'})
      .option('grpc-port', {type: 'number', default: int(env.BYOL_GRPC_PORT, 50051), describe: 'gRPC port for agents (BYOL_GRPC_PORT)'})
      .option('telemetry-port', {type: 'number', default: int(env.BYOL_TELEMETRY_PORT, 5555), describe: 'ZeroMQ PULL port for metrics (BYOL_TELEMETRY_PORT)'})
      .option('advertise-host', {type: 'string', default: env.BYOL_ADVERTISE_HOST, describe: 'host agents dial (BYOL_ADVERTISE_HOST; default: 127.0.0.1 on loopback, else the hostname)'})
      .option('store', {type: 'string', default: env.BYOL_STORE, describe: 'SQLite store (BYOL_STORE; default <home>/store.db)'})
      .option('checkpoint-root', {type: 'string', default: env.BYOL_CHECKPOINT_ROOT, describe: 'checkpoint folder (BYOL_CHECKPOINT_ROOT; default <home>/checkpoints)'})
      .option('data-root', {type: 'string', array: true, default: (env.BYOL_DATA_ROOTS ?? '').split(',').filter(Boolean),
        describe: 'specs may only name data under these folders; relative paths resolve against the first (BYOL_DATA_ROOTS, comma-separated; default: any path)'})
      .option('launcher', {choices: ['local', 'external', 'kubernetes'] as const, default: (env.BYOL_LAUNCHER ?? 'local') as 'local',
        describe: 'how agents start: spawned here, by someone else, or as Kubernetes pods (BYOL_LAUNCHER)'})
      .option('agent-token', {type: 'string', default: env.BYOL_AGENT_TOKEN, describe: 'token agents present (BYOL_AGENT_TOKEN; generated for --launcher local, required otherwise)'})
      .option('api-token', {type: 'string', default: env.BYOL_API_TOKEN, describe: 'bearer token for submit/cancel (BYOL_API_TOKEN; default none: loopback only)'})
      .option('tls-cert', {type: 'string', default: env.BYOL_TLS_CERT, describe: 'PEM certificate file: serve REST over HTTPS (BYOL_TLS_CERT; default plain HTTP)'})
      .option('tls-key', {type: 'string', default: env.BYOL_TLS_KEY, describe: 'PEM private key file for --tls-cert (BYOL_TLS_KEY)'})
      .option('python', {type: 'string', default: env.BYOL_PYTHON, describe: 'python with byol_worker, for local agents and export (BYOL_PYTHON; default .venv/bin/python, else python3)'}) as unknown as Argv<Args>, // yargs types the kebab names only
    handler: (argv) => runCommand(ctx, argv, async () => {
      let agentToken = argv.agentToken;
      if (!agentToken) {
        if (argv.launcher !== 'local') throw new UsageError(`--agent-token (BYOL_AGENT_TOKEN) is required with --launcher ${argv.launcher}: agents must present it`);
        agentToken = randomBytes(16).toString('hex'); // local agents get it from the launcher
      }
      if (Boolean(argv.tlsCert) !== Boolean(argv.tlsKey)) throw new UsageError('--tls-cert and --tls-key go together');
      const tls = argv.tlsCert && argv.tlsKey ? {cert: readPem(argv.tlsCert, '--tls-cert'), key: readPem(argv.tlsKey, '--tls-key')} : undefined;
      const logger = createLogger({level: argv.debug ? 'debug' : undefined});
      const pythonBin = argv.python || defaultPythonBin();
      const coordinator = await startCoordinator({
        storePath: argv.store ?? join(argv.home, 'store.db'), checkpointRoot: argv.checkpointRoot ?? join(argv.home, 'checkpoints'),
        dataRoots: argv.dataRoot, agentToken, launcher: argv.launcher, grpcHost: argv.grpcHost, grpcPort: argv.grpcPort,
        telemetryPort: argv.telemetryPort, advertiseHost: argv.advertiseHost, pythonBin, logger,
      });
      try {
        const rest = await startApiServer({api: coordinator.api, logger, host: argv.host, port: argv.port, token: argv.apiToken || undefined,
          registry: coordinator.registry, pythonBin, tls});
        ctx.io.err(`byol coordinator: REST ${rest.url}, gRPC ${coordinator.grpcAddress}, telemetry ${coordinator.telemetryAddress}\n`);
        await new Promise<void>((resolve) => {
          if (ctx.signal.aborted) return resolve();
          const stop = () => {
            ctx.signal.removeEventListener('abort', stop);
            process.removeListener('SIGTERM', stop);
            resolve();
          };
          ctx.signal.addEventListener('abort', stop, {once: true});
          process.once('SIGTERM', stop);
        });
        await rest.close();
      } finally {
        await coordinator.close();
      }
      return 0;
    }),
  };
}
