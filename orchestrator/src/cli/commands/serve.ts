/** byolctl serve: the coordinator (gRPC for agents, ZeroMQ telemetry, store, launcher) plus the REST API. */
import {randomBytes} from 'node:crypto';
import {join} from 'node:path';
import type {Argv, CommandModule} from 'yargs';
import {startApiServer} from '../../api';
import {listenRefusal} from '../../api/auth';
import {defaultPythonBin, startCoordinator} from '../../coordinator/start';
import {createLogger} from '../../log/logger';
import {plaintextListenRefusal} from '../../transport/grpc-tls';
import {UsageError} from '../exit-codes';
import {resolveToken} from '../serve-secrets';
import {grpcTlsFromArgs, readPem} from '../serve-tls';
import {type CliContext, runCommand} from '../run';
import type {GlobalArgs} from '../target';

interface Args extends GlobalArgs {
  host: string;
  port: number;
  grpcHost?: string;
  grpcPort: number;
  telemetryPort: number;
  advertiseHost?: string;
  store?: string;
  checkpointRoot?: string;
  dataRoot: string[];
  launcher: 'local' | 'external' | 'kubernetes';
  agentToken?: string;
  agentTokenFile?: string;
  apiToken?: string;
  apiTokenFile?: string;
  grpcTlsCert?: string;
  grpcTlsKey?: string;
  grpcTlsClientCa?: string;
  grpcTlsCa?: string;
  grpcInsecure: boolean;
  python?: string;
  tlsCert?: string;
  tlsKey?: string;
  metricsPublic: boolean;
  insecureNoToken: boolean;
}

const env = process.env;
const int = (v: string | undefined, d: number) => (v === undefined || v === '' ? d : Number(v));
const bool = (v: string | undefined) => v !== undefined && /^(1|true|yes)$/i.test(v);

export function serveCommand(ctx: CliContext): CommandModule<GlobalArgs, Args> {
  return {
    command: 'serve',
    describe: 'Run the coordinator and the REST API until SIGINT/SIGTERM',
    builder: (y) => y
      .option('host', {type: 'string', default: env.BYOL_HOST ?? '127.0.0.1', describe: 'REST listen address (BYOL_HOST); beyond loopback needs --api-token'})
      .option('port', {type: 'number', default: int(env.BYOL_PORT, 8080), describe: 'REST port, 0 = any (BYOL_PORT)'})
      .option('grpc-host', {type: 'string', default: env.BYOL_GRPC_HOST,
        describe: 'gRPC and telemetry listen address (BYOL_GRPC_HOST; default 127.0.0.1 with --launcher local, else 0.0.0.0, which needs --grpc-tls-cert or --grpc-insecure)'})
      .option('grpc-tls-cert', {type: 'string', default: env.BYOL_GRPC_TLS_CERT, describe: 'PEM certificate file: serve gRPC to agents over TLS (BYOL_GRPC_TLS_CERT); its names must match the address agents dial'})
      .option('grpc-tls-key', {type: 'string', default: env.BYOL_GRPC_TLS_KEY, describe: 'PEM private key file for --grpc-tls-cert (BYOL_GRPC_TLS_KEY)'})
      .option('grpc-tls-client-ca', {type: 'string', default: env.BYOL_GRPC_TLS_CLIENT_CA, describe: 'PEM CA file: require agents to present a client certificate signed by it, mTLS (BYOL_GRPC_TLS_CLIENT_CA)'})
      .option('grpc-tls-ca', {type: 'string', default: env.BYOL_GRPC_TLS_CA, describe: 'PEM CA that signed --grpc-tls-cert, for agents the local launcher starts (BYOL_GRPC_TLS_CA; default the certificate itself, fine when self-signed)'})
      .option('grpc-insecure', {type: 'boolean', default: /^(1|true|yes)$/i.test(env.BYOL_GRPC_INSECURE ?? ''),
        describe: 'allow plaintext gRPC beyond loopback: the agent token crosses the network in clear (BYOL_GRPC_INSECURE=1)'})
      .option('grpc-port', {type: 'number', default: int(env.BYOL_GRPC_PORT, 50051), describe: 'gRPC port for agents (BYOL_GRPC_PORT)'})
      .option('telemetry-port', {type: 'number', default: int(env.BYOL_TELEMETRY_PORT, 5555), describe: 'ZeroMQ PULL port for metrics (BYOL_TELEMETRY_PORT)'})
      .option('advertise-host', {type: 'string', default: env.BYOL_ADVERTISE_HOST, describe: 'host agents dial (BYOL_ADVERTISE_HOST; default: 127.0.0.1 on loopback, else the hostname)'})
      .option('store', {type: 'string', default: env.BYOL_STORE, describe: 'SQLite store (BYOL_STORE; default <home>/store.db)'})
      .option('checkpoint-root', {type: 'string', default: env.BYOL_CHECKPOINT_ROOT, describe: 'checkpoint folder (BYOL_CHECKPOINT_ROOT; default <home>/checkpoints)'})
      .option('data-root', {type: 'string', array: true, default: (env.BYOL_DATA_ROOTS ?? '').split(',').filter(Boolean),
        describe: 'specs may only name data under these folders; relative paths resolve against the first (BYOL_DATA_ROOTS, comma-separated; default: any path)'})
      .option('launcher', {choices: ['local', 'external', 'kubernetes'] as const, default: (env.BYOL_LAUNCHER ?? 'local') as 'local',
        describe: 'how agents start: spawned here, by someone else, or as Kubernetes pods (BYOL_LAUNCHER)'})
      .option('agent-token', {type: 'string', describe: 'token agents present; visible in ps, prefer --agent-token-file or BYOL_AGENT_TOKEN (generated for --launcher local, required otherwise; 16+ characters)'})
      .option('agent-token-file', {type: 'string', describe: 'file whose first line is the agent token (BYOL_AGENT_TOKEN_FILE)'})
      .option('api-token', {type: 'string', describe: 'bearer token every REST route but /healthz and /readyz needs; visible in ps, prefer --api-token-file or BYOL_API_TOKEN (default none: loopback only; 16+ characters)'})
      .option('api-token-file', {type: 'string', describe: 'file whose first line is the API token (BYOL_API_TOKEN_FILE)'})
      .option('metrics-public', {type: 'boolean', default: bool(env.BYOL_METRICS_PUBLIC), describe: 'serve Prometheus /metrics without the API token (BYOL_METRICS_PUBLIC; default false)'})
      .option('insecure-no-token', {type: 'boolean', default: bool(env.BYOL_INSECURE_NO_TOKEN),
        describe: 'let REST listen beyond loopback without an API token, every route open: only behind an authenticating proxy (BYOL_INSECURE_NO_TOKEN; default false: refused)'})
      .option('tls-cert', {type: 'string', default: env.BYOL_TLS_CERT, describe: 'PEM certificate file: serve REST over HTTPS (BYOL_TLS_CERT; default plain HTTP)'})
      .option('tls-key', {type: 'string', default: env.BYOL_TLS_KEY, describe: 'PEM private key file for --tls-cert (BYOL_TLS_KEY)'})
      .option('python', {type: 'string', default: env.BYOL_PYTHON, describe: 'python with byol_worker, for local agents and export (BYOL_PYTHON; default .venv/bin/python, else python3)'}) as unknown as Argv<Args>, // yargs types the kebab names only
    handler: (argv) => runCommand(ctx, argv, async () => {
      const logger = createLogger({level: argv.debug ? 'debug' : undefined});
      let agentToken = resolveToken({name: 'agent-token', flag: argv.agentToken, file: argv.agentTokenFile}, env, logger);
      if (!agentToken) {
        if (argv.launcher !== 'local') throw new UsageError(`an agent token is required with --launcher ${argv.launcher}: agents must present it; give --agent-token-file FILE or BYOL_AGENT_TOKEN`);
        agentToken = randomBytes(16).toString('hex'); // local agents get it from the launcher
      }
      const apiToken = resolveToken({name: 'api-token', flag: argv.apiToken, file: argv.apiTokenFile}, env, logger);
      if (Boolean(argv.tlsCert) !== Boolean(argv.tlsKey)) throw new UsageError('--tls-cert and --tls-key go together');
      const restRefusal = listenRefusal({host: argv.host, token: apiToken, insecureNoToken: argv.insecureNoToken});
      if (restRefusal) throw new UsageError(restRefusal);
      const tls = argv.tlsCert && argv.tlsKey ? {cert: readPem(argv.tlsCert, '--tls-cert'), key: readPem(argv.tlsKey, '--tls-key')} : undefined;
      const grpcTls = grpcTlsFromArgs(argv);
      const grpcHost = argv.grpcHost ?? (argv.launcher === 'local' ? '127.0.0.1' : '0.0.0.0');
      const refusal = plaintextListenRefusal(grpcHost, argv.grpcPort, grpcTls.tls, argv.grpcInsecure);
      if (refusal) throw new UsageError(refusal);
      const pythonBin = argv.python || defaultPythonBin();
      const coordinator = await startCoordinator({
        storePath: argv.store ?? join(argv.home, 'store.db'), checkpointRoot: argv.checkpointRoot ?? join(argv.home, 'checkpoints'),
        dataRoots: argv.dataRoot, agentToken, launcher: argv.launcher, grpcHost, grpcPort: argv.grpcPort,
        grpcTls: grpcTls.tls, localAgentTls: grpcTls.localAgentTls, grpcInsecure: argv.grpcInsecure,
        telemetryPort: argv.telemetryPort, advertiseHost: argv.advertiseHost, pythonBin, logger,
      });
      try {
        const rest = await startApiServer({api: coordinator.api, logger, host: argv.host, port: argv.port, token: apiToken,
          registry: coordinator.registry, pythonBin, tls, metricsPublic: argv.metricsPublic, insecureNoToken: argv.insecureNoToken});
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
