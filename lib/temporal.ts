import { readFileSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import type { TemporalEndpoint } from '../schemas/config';
import { AesGcmPayloadCodec } from './codec';
import type { KeyStore } from './keystore';

/** The one data converter every Steward client and worker uses: all payloads AES-256-GCM encrypted. */
export function stewardDataConverter(keys: KeyStore): DataConverter {
  return { payloadCodecs: [new AesGcmPayloadCodec(keys)] };
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
