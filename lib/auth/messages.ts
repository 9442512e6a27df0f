import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { canonicalJson } from '../crypto/canonical';
import type { KeyStore } from '../crypto/keystore';
import {
  InternalMessageSchema,
  type InternalMessage,
  type MessageKind,
  type MessageVerdict,
} from '../../schemas/message';

/** The secret a jurisdiction's workers seal internal messages with, by its key-store id. */
export function messageKeyId(jurisdiction: string): string {
  return `messages/${jurisdiction}`;
}

/**
 * The jurisdiction's message key, created on first use. Held by its workers and Steward's own services (the codec
 * server, the stack, the CA administrator's commands), which open the key store; never by a client holding only the
 * payload key.
 */
export function jurisdictionMessageKey(keys: KeyStore, jurisdiction: string): Promise<Buffer> {
  return keys.storeSecret(messageKeyId(jurisdiction), randomBytes(32));
}

function macOf(key: Buffer, fields: Omit<InternalMessage, 'mac'>): string {
  return createHmac('sha256', key).update(canonicalJson(fields)).digest('base64url');
}

/** Seals a message: every field is bound by the MAC, so changing any of them (the body, the receiver) breaks it. */
export function sealMessage(key: Buffer, fields: Omit<InternalMessage, 'format' | 'mac'>): InternalMessage {
  const unsealed = { format: 'steward-message/1' as const, ...fields };
  return { ...unsealed, mac: macOf(key, unsealed) };
}

/**
 * Checks a message before anything acts on it: its shape, its kind, that it is meant for this receiver in this
 * jurisdiction, and its seal. The reason names the rule broken, never the message's content.
 */
export function openMessage(
  key: Buffer,
  raw: unknown,
  expect: { kind: MessageKind; to: string; jurisdiction: string },
): MessageVerdict {
  const parsed = InternalMessageSchema.safeParse(raw);
  if (!parsed.success) return { ok: false, reason: 'not a sealed Steward message' };
  const { mac, ...fields } = parsed.data;
  const expected = Buffer.from(macOf(key, fields));
  const given = Buffer.from(mac);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
    return {
      ok: false,
      reason: `the seal does not verify: the message was not sealed by a worker of ${expect.jurisdiction}, or was altered`,
    };
  }
  if (fields.kind !== expect.kind) return { ok: false, reason: `a ${fields.kind} message where ${expect.kind} is due` };
  if (fields.to !== expect.to) return { ok: false, reason: 'the message is meant for another workflow' };
  if (fields.jurisdiction !== expect.jurisdiction) {
    return { ok: false, reason: `the message is for jurisdiction ${fields.jurisdiction}` };
  }
  return { ok: true };
}
