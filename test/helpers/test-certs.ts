/**
 * Throwaway certificates for the TLS tests, made with the openssl CLI in a temp folder (never committed):
 * a CA, a coordinator certificate it signs for the name `byol-test-coordinator` only (so agents dialling
 * 127.0.0.1 must use --tls-server-name), an agent client certificate it signs, and an unrelated CA.
 */
import {execFileSync} from 'node:child_process';
import {writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {tempDir} from './temp';

export const TEST_SERVER_NAME = 'byol-test-coordinator';

export interface TestCerts {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  otherCaCert: string;
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, {cwd, stdio: ['ignore', 'ignore', 'pipe']});
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('the openssl CLI is needed for the TLS tests: apt-get install -y openssl');
    throw new Error(`openssl ${args.join(' ')} failed: ${String((err as {stderr?: Buffer}).stderr ?? err)}`);
  }
}

const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

function ca(name: string, cwd: string): void {
  openssl(['req', '-x509', ...KEY, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`], cwd);
}

function signed(name: string, cn: string, ext: string, cwd: string): void {
  writeFileSync(join(cwd, `${name}.ext`), ext);
  openssl(['req', ...KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], cwd);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`], cwd);
}

export function makeTestCerts(): TestCerts {
  const tmp = tempDir('byol-certs-');
  const d = tmp.path;
  ca('ca', d);
  ca('other-ca', d);
  signed('server', TEST_SERVER_NAME, `subjectAltName=DNS:${TEST_SERVER_NAME}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`, d);
  signed('client', 'agent-1', 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n', d);
  return {
    dir: d, caCert: join(d, 'ca.pem'), serverCert: join(d, 'server.pem'), serverKey: join(d, 'server.key'),
    clientCert: join(d, 'client.pem'), clientKey: join(d, 'client.key'), otherCaCert: join(d, 'other-ca.pem'),
    cleanup: tmp.cleanup,
  };
}
