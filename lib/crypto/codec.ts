import { METADATA_ENCODING_KEY, type Payload, type PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { open, seal } from './aead';
import type { KeyStore } from './keystore';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
const KEY_ID_METADATA = 'encryption-key-id';

/**
 * Encrypts every Temporal payload with AES-256-GCM. The key id travels in the payload metadata so old
 * histories stay readable after the payload key changes; the key itself stays in the key store.
 */
export class AesGcmPayloadCodec implements PayloadCodec {
  constructor(private readonly keys: KeyStore) {}

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const key = await this.keys.payloadKey();
    return payloads.map((payload) => {
      const plain = temporal.api.common.v1.Payload.encode(payload).finish();
      return {
        metadata: {
          [METADATA_ENCODING_KEY]: Buffer.from(ENCRYPTED_ENCODING),
          [KEY_ID_METADATA]: Buffer.from(key.id),
        },
        data: seal(key.material, plain),
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return Promise.all(
      payloads.map(async (payload) => {
        const encoding = payload.metadata?.[METADATA_ENCODING_KEY];
        if (!encoding || Buffer.from(encoding).toString() !== ENCRYPTED_ENCODING) return payload;
        const keyId = payload.metadata?.[KEY_ID_METADATA];
        if (!keyId || !payload.data) throw new Error('encrypted payload without key id or data');
        const key = await this.keys.payloadKeyById(Buffer.from(keyId).toString());
        return temporal.api.common.v1.Payload.decode(open(key.material, payload.data));
      }),
    );
  }
}
