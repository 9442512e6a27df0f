import { METADATA_ENCODING_KEY, type Payload, type PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { open, seal } from './aead';
import type { KeyStore } from './keystore';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
const KEY_ID_METADATA = 'encryption-key-id';

/** What a worker's codec makes of a payload it will not act on: a value no input, signal or update schema accepts. */
export const REFUSED_PAYLOAD_FIELD = 'steward.refusedPayload';

function refusedPayload(reason: string): Payload {
  return {
    metadata: { [METADATA_ENCODING_KEY]: Buffer.from('json/plain') },
    data: Buffer.from(JSON.stringify({ [REFUSED_PAYLOAD_FIELD]: reason })),
  };
}

function isEncrypted(payload: Payload): boolean {
  const encoding = payload.metadata?.[METADATA_ENCODING_KEY];
  return encoding !== undefined && encoding !== null && Buffer.from(encoding).toString() === ENCRYPTED_ENCODING;
}

/**
 * Encrypts every Temporal payload with AES-256-GCM. The key id travels in the payload metadata so old
 * histories stay readable after the payload key changes; the key itself stays in the key store.
 *
 * A worker's codec (`refuseUnencrypted`) acts only on payloads it decrypted once: a payload sent in the clear (the
 * `temporal` CLI without the codec), encrypted twice, or that does not decrypt becomes a refusal marker instead of an
 * error. A workflow then fails its input check as `InvalidInput`, and a signal's receiver drops it and audits it, where
 * a decoding error would fail the workflow task again and again and leave the run stuck.
 */
export class AesGcmPayloadCodec implements PayloadCodec {
  constructor(
    private readonly keys: KeyStore,
    private readonly options: { refuseUnencrypted?: boolean } = {},
  ) {}

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
    const strict = this.options.refuseUnencrypted === true;
    return Promise.all(
      payloads.map(async (payload) => {
        if (!isEncrypted(payload)) return strict ? refusedPayload('a payload that is not encrypted') : payload;
        let inner: Payload;
        try {
          inner = await this.decrypt(payload);
        } catch (error) {
          if (strict) return refusedPayload('a payload that does not decrypt');
          throw error;
        }
        return strict && isEncrypted(inner) ? refusedPayload('a payload encrypted twice') : inner;
      }),
    );
  }

  private async decrypt(payload: Payload): Promise<Payload> {
    const keyId = payload.metadata?.[KEY_ID_METADATA];
    if (!keyId || !payload.data) throw new Error('encrypted payload without key id or data');
    const key = await this.keys.payloadKeyById(Buffer.from(keyId).toString());
    return temporal.api.common.v1.Payload.decode(open(key.material, payload.data));
  }
}
