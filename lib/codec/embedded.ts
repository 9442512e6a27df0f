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
 * Starts a codec server that records its accesses in the jurisdiction's audit trail through a Temporal client opened on
 * first use; resolves once it listens.
 */
export async function startCodecServer(
  options: Omit<CodecServerOptions, 'record' | 'trust'> & {
    pkiDir: string;
    temporal: TemporalEndpoint;
    host: string;
    port: number;
  },
): Promise<RunningCodecServer> {
  let client: Promise<Client> | undefined;
  let messageKey: Promise<Buffer> | undefined;
  const server = createCodecServer({
    ...options,
    trust: new TrustAnchor(options.pkiDir),
    record: async (access) => {
      client ??= connectClient(options.temporal, options.keys);
      messageKey ??= jurisdictionMessageKey(options.keys, options.jurisdiction);
      await appendAudit(
        await client,
        await messageKey,
        options.jurisdiction,
        [accessEvent(access)],
        'steward-codec-server',
      );
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

/** The embedded stack's codec server: loopback only, plain http, grants under `<data dir>/codec/grants`. */
export function startEmbeddedCodecServer(options: {
  dataDir: string;
  keys: KeyStore;
  pkiDir: string;
  port: number;
  jurisdiction: string;
  uiOrigins: string[];
  temporal: TemporalEndpoint;
}): Promise<RunningCodecServer> {
  return startCodecServer({
    keys: options.keys,
    pkiDir: options.pkiDir,
    jurisdiction: options.jurisdiction,
    uiOrigins: options.uiOrigins,
    grantsDir: path.join(options.dataDir, 'codec', 'grants'),
    temporal: options.temporal,
    host: '127.0.0.1',
    port: options.port,
  });
}
