import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { TemporalEndpoint } from '../../schemas/config';
import type { SignedRequest } from '../../schemas/request';
import { appendAudit } from '../client/audit';
import { jurisdictionMessageKey } from '../auth/messages';
import { connectClient } from '../client/temporal';
import type { KeyStore } from '../crypto/keystore';
import { TrustAnchor } from '../pki/authority';
import { accessEvent, createCodecServer, type CodecServerOptions } from './server';

export interface RunningCodecServer {
  port: number;
  close(): Promise<void>;
}

/** Writes a grant where a codec server finds it by the id in its URL. */
export async function writeCodecGrant(
  dir: string,
  grant: { grantId: string; request: SignedRequest },
): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, `${grant.grantId}.json`);
  await writeFile(file, JSON.stringify(grant.request, null, 2), { mode: 0o600 });
  return file;
}

/**
 * Starts a codec server that records its accesses in the audit trail of every jurisdiction it serves (a payload does
 * not say whose it is, so each jurisdiction's trail shows who read what), through a Temporal client opened on first
 * use; resolves once it listens. Grants are those of `jurisdiction`.
 */
export async function startCodecServer(
  options: Omit<CodecServerOptions, 'record' | 'trust'> & {
    pkiDir: string;
    temporal: TemporalEndpoint;
    host: string;
    port: number;
    /** The trails that record each access (default: `jurisdiction`'s alone). */
    auditJurisdictions?: readonly string[];
  },
): Promise<RunningCodecServer> {
  let client: Promise<Client> | undefined;
  const messageKeys = new Map<string, Promise<Buffer>>();
  const trails = options.auditJurisdictions ?? [options.jurisdiction];
  const server = createCodecServer({
    ...options,
    trust: new TrustAnchor(options.pkiDir),
    record: async (access) => {
      client ??= connectClient(options.temporal, options.keys);
      for (const jurisdiction of trails) {
        if (!messageKeys.has(jurisdiction)) {
          messageKeys.set(jurisdiction, jurisdictionMessageKey(options.keys, jurisdiction));
        }
        const key = await messageKeys.get(jurisdiction)!;
        await appendAudit(await client, key, jurisdiction, [accessEvent(access)], 'steward-codec-server');
      }
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    async close() {
      server.closeAllConnections?.();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (client) await (await client).connection.close();
    },
  };
}

/**
 * The stack's codec server: loopback only, grants under `<data dir>/codec/grants`; plain http in the embedded
 * profile, HTTPS with the deployment's certificate in the production profile.
 */
export function startEmbeddedCodecServer(options: {
  dataDir: string;
  keys: KeyStore;
  pkiDir: string;
  port: number;
  jurisdiction: string;
  auditJurisdictions: readonly string[];
  uiOrigins: string[];
  temporal: TemporalEndpoint;
  tls?: { certFile: string; keyFile: string } | undefined;
}): Promise<RunningCodecServer> {
  return startCodecServer({
    ...(options.tls
      ? {
          tls: {
            cert: readFileSync(options.tls.certFile, 'utf8'),
            key: readFileSync(options.tls.keyFile, 'utf8'),
            requestClientCertificate: false,
          },
        }
      : {}),
    keys: options.keys,
    pkiDir: options.pkiDir,
    jurisdiction: options.jurisdiction,
    auditJurisdictions: options.auditJurisdictions,
    uiOrigins: options.uiOrigins,
    grantsDir: path.join(options.dataDir, 'codec', 'grants'),
    temporal: options.temporal,
    host: '127.0.0.1',
    port: options.port,
  });
}
