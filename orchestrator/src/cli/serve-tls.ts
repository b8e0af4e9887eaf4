/**
 * `byolctl serve`'s gRPC TLS flags -> the coordinator's TLS options: server certificate and key, optional
 * client CA (mTLS), and what the local launcher's agents need to verify the coordinator.
 */
import {X509Certificate} from 'node:crypto';
import {readFileSync} from 'node:fs';
import type {LocalAgentTls} from '../launchers/local';
import type {GrpcTlsOptions} from '../transport/grpc-tls';
import {UsageError} from './exit-codes';

export function readPem(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new UsageError(`${flag} ${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

export interface GrpcTlsArgs {
  grpcTlsCert?: string;
  grpcTlsKey?: string;
  grpcTlsClientCa?: string;
  grpcTlsCa?: string;
  launcher: string;
}

function certificate(pem: Buffer, file: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new UsageError(`--grpc-tls-cert ${file}: not a PEM certificate (${(err as Error).message})`);
  }
}

/** The name local agents check the certificate against: none when it names 127.0.0.1, else its first DNS name (or CN). */
function loopbackServerName(cert: X509Certificate): string | undefined {
  const sans = (cert.subjectAltName ?? '').split(/,\s*/);
  if (sans.includes('IP Address:127.0.0.1')) return undefined;
  const dns = sans.find((s) => s.startsWith('DNS:'));
  if (dns) return dns.slice(4);
  return /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1];
}

export function grpcTlsFromArgs(a: GrpcTlsArgs): {tls?: GrpcTlsOptions; localAgentTls?: LocalAgentTls} {
  if (Boolean(a.grpcTlsCert) !== Boolean(a.grpcTlsKey)) throw new UsageError('--grpc-tls-cert and --grpc-tls-key go together');
  if (!a.grpcTlsCert || !a.grpcTlsKey) {
    if (a.grpcTlsClientCa || a.grpcTlsCa) throw new UsageError('--grpc-tls-client-ca and --grpc-tls-ca need --grpc-tls-cert and --grpc-tls-key');
    return {};
  }
  const cert = readPem(a.grpcTlsCert, '--grpc-tls-cert');
  const tls: GrpcTlsOptions = {cert, key: readPem(a.grpcTlsKey, '--grpc-tls-key')};
  if (a.grpcTlsClientCa) tls.clientCa = readPem(a.grpcTlsClientCa, '--grpc-tls-client-ca');
  if (a.launcher !== 'local') return {tls};
  if (tls.clientCa) {
    throw new UsageError('--grpc-tls-client-ca (mTLS) with --launcher local: local agents have no client certificate; ' +
      'use --launcher external and start agents with --tls-cert/--tls-key, or drop --grpc-tls-client-ca');
  }
  const caFile = a.grpcTlsCa ?? a.grpcTlsCert;
  readPem(caFile, a.grpcTlsCa ? '--grpc-tls-ca' : '--grpc-tls-cert');
  return {tls, localAgentTls: {caFile, serverName: loopbackServerName(certificate(cert, a.grpcTlsCert))}};
}
