import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import type { TemporalEndpoint } from '../../schemas/config';
import { AesGcmPayloadCodec } from '../crypto/codec';
import type { KeyStore } from '../crypto/keystore';

/** The module whose `failureConverter` encodes failure messages, so they are encrypted with the payloads. */
export const FAILURE_CONVERTER_PATH = path.join(
  __dirname,
  '..',
  'crypto',
  __filename.endsWith('.ts') ? 'failure-converter.ts' : 'failure-converter.js',
);

/**
 * The one data converter every Steward client and worker uses: all payloads AES-256-GCM encrypted, failure messages and
 * stack traces included. A worker's (`worker: true`) acts on nothing that was not encrypted with the payload key.
 */
export function stewardDataConverter(keys: KeyStore, options: { worker?: boolean } = {}): DataConverter {
  return {
    payloadCodecs: [new AesGcmPayloadCodec(keys, { refuseUnencrypted: options.worker === true })],
    failureConverterPath: FAILURE_CONVERTER_PATH,
  };
}

export function connectionOptions(endpoint: TemporalEndpoint) {
  const tls = endpoint.tls
    ? {
        ...(endpoint.tls.serverName ? { serverNameOverride: endpoint.tls.serverName } : {}),
        ...(endpoint.tls.caFile ? { serverRootCACertificate: readFileSync(endpoint.tls.caFile) } : {}),
        clientCertPair: { crt: readFileSync(endpoint.tls.certFile), key: readFileSync(endpoint.tls.keyFile) },
      }
    : undefined;
  return { address: endpoint.address, ...(tls ? { tls } : {}) };
}

export async function connectClient(endpoint: TemporalEndpoint, keys: KeyStore): Promise<Client> {
  const connection = await Connection.connect({ ...connectionOptions(endpoint), connectTimeout: '10s' });
  return new Client({ connection, namespace: endpoint.namespace, dataConverter: stewardDataConverter(keys) });
}
