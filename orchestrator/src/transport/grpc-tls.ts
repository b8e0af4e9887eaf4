/**
 * TLS for the agent service: server credentials (optionally requiring client certificates signed by a
 * given CA, i.e. mTLS) and the rule that plaintext gRPC stays on loopback unless the user says otherwise.
 */
import * as grpc from '@grpc/grpc-js';

export interface GrpcTlsOptions {
  /** PEM certificate chain of the coordinator (its SANs must name the address agents dial). */
  cert: Buffer;
  /** PEM private key of `cert`. */
  key: Buffer;
  /** PEM CA bundle: when set, every agent must present a client certificate signed by it (mTLS). */
  clientCa?: Buffer;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|\[::1\]|localhost|::ffff:127\.\d+\.\d+\.\d+)$/i;

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK.test(host);
}

export function serverCredentials(tls: GrpcTlsOptions | undefined): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(tls.clientCa ?? null, [{private_key: tls.key, cert_chain: tls.cert}], Boolean(tls.clientCa));
}

/** Why a plaintext listen is refused, or null when it is allowed (TLS on, loopback, or explicitly insecure). */
export function plaintextListenRefusal(host: string, port: number, tls: GrpcTlsOptions | undefined, insecure: boolean): string | null {
  if (tls || insecure || isLoopbackHost(host)) return null;
  return `refusing to serve gRPC for agents on ${host}:${port} without TLS: the agent token and every report would cross ` +
    'the network in clear. Turn TLS on with --grpc-tls-cert FILE --grpc-tls-key FILE (BYOL_GRPC_TLS_CERT, BYOL_GRPC_TLS_KEY; ' +
    'agents then pass --tls-ca), listen on loopback with --grpc-host 127.0.0.1, or accept plaintext on a network you trust ' +
    'with --grpc-insecure (BYOL_GRPC_INSECURE=1)';
}
