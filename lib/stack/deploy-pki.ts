import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { generateKeyPair, issueCertificate } from '../pki/x509';

/** The names a production deployment's clients verify its servers against, whatever address they dial. */
export const TLS_NAMES = {
  frontend: 'temporal-frontend.steward',
  internode: 'temporal-internode.steward',
  storage: (site: string) => `${site}.storage.steward`,
  codec: 'codec.steward',
  ui: 'ui.steward',
} as const;

export interface TlsPair {
  certFile: string;
  keyFile: string;
}

/**
 * The deployment's transport PKI: a CA of its own (apart from the Steward CA, whose certificates mean people and
 * evidence signers) and the certificates every server and client presents, all RSA-2048, one year.
 */
export interface DeploymentPki {
  dir: string;
  caFile: string;
  /** The Temporal frontend's server certificate. */
  frontend: TlsPair;
  /** Temporal's services to each other, as server and as client (mutual). */
  internode: TlsPair;
  /** What Steward's workers, CLI and codec server present to the frontend. */
  client: TlsPair;
  /** A storage site's HTTPS certificate. */
  site(name: string, ips: string[]): Promise<TlsPair>;
  /** The codec server's HTTPS certificate. */
  codec: TlsPair;
  /** The Web UI server's HTTPS certificate. */
  ui: TlsPair;
}

const VALID_DAYS = 365;

async function writePair(dir: string, name: string, certificatePem: string, privateKeyPem: string): Promise<TlsPair> {
  const pair = { certFile: path.join(dir, `${name}.pem`), keyFile: path.join(dir, `${name}-key.pem`) };
  await writeFile(pair.keyFile, privateKeyPem, { mode: 0o600 });
  await writeFile(pair.certFile, certificatePem, { mode: 0o644 });
  return pair;
}

/** The deployment PKI under `dir`, created on first use; certificates already issued are kept. */
export async function ensureDeploymentPki(dir: string): Promise<DeploymentPki> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const caFile = path.join(dir, 'ca.pem');
  const caKeyFile = path.join(dir, 'ca-key.pem');
  if (!existsSync(caFile) || !existsSync(caKeyFile)) {
    const keys = generateKeyPair(2048);
    const certificatePem = issueCertificate({
      commonName: 'Steward deployment CA',
      unit: 'transport',
      publicKeyPem: keys.publicKeyPem,
      validDays: VALID_DAYS * 5,
      ca: true,
      selfPrivateKeyPem: keys.privateKeyPem,
    });
    await writeFile(caKeyFile, keys.privateKeyPem, { mode: 0o600 });
    await writeFile(caFile, certificatePem, { mode: 0o644 });
  }
  const issuer = { certificatePem: readFileSync(caFile, 'utf8'), privateKeyPem: readFileSync(caKeyFile, 'utf8') };
  const issue = async (
    name: string,
    tls: { server?: boolean; client?: boolean; dnsNames?: string[]; ips?: string[] },
  ): Promise<TlsPair> => {
    const existing = { certFile: path.join(dir, `${name}.pem`), keyFile: path.join(dir, `${name}-key.pem`) };
    // A certificate is kept while it still names every address asked for (a site's address can move).
    if (existsSync(existing.certFile) && existsSync(existing.keyFile)) {
      const altNames = new X509Certificate(readFileSync(existing.certFile)).subjectAltName ?? '';
      if ((tls.ips ?? []).every((address) => altNames.split(', ').includes(`IP Address:${address}`))) return existing;
    }
    const keys = generateKeyPair(2048);
    const certificatePem = issueCertificate({
      commonName: tls.dnsNames?.[0] ?? name,
      unit: 'transport',
      publicKeyPem: keys.publicKeyPem,
      validDays: VALID_DAYS,
      issuer,
      tls,
    });
    return writePair(dir, name, certificatePem, keys.privateKeyPem);
  };
  const loopback = ['127.0.0.1'];
  return {
    dir,
    caFile,
    frontend: await issue('temporal-frontend', {
      server: true,
      dnsNames: [TLS_NAMES.frontend, 'localhost'],
      ips: loopback,
    }),
    internode: await issue('temporal-internode', {
      server: true,
      client: true,
      dnsNames: [TLS_NAMES.internode],
      ips: loopback,
    }),
    client: await issue('steward-client', { client: true, dnsNames: ['steward-client'] }),
    codec: await issue('codec', { server: true, dnsNames: [TLS_NAMES.codec, 'localhost'], ips: loopback }),
    ui: await issue('ui', { server: true, dnsNames: [TLS_NAMES.ui, 'localhost'], ips: loopback }),
    site: (name, ips) => issue(`site-${name}`, { server: true, dnsNames: [TLS_NAMES.storage(name)], ips }),
  };
}
