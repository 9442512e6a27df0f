import { createHmac } from 'node:crypto';
import type { KeyStore } from './keystore';

/** Canonical form of a direct identifier before keying: Unicode NFC, surrounding whitespace trimmed. */
export function canonicalizeIdentifier(raw: string): string {
  return raw.normalize('NFC').trim();
}

const TOKEN_PATTERN = /^v(\d+)\.([A-Za-z0-9_-]{43})$/;

/**
 * Deterministic pseudonym for a direct identifier: `v<keyVersion>.<base64url HMAC-SHA256>`.
 * The key is per (jurisdiction, study, version), so tokens join within a study and are unlinkable across studies.
 */
export function tokenize(key: Buffer, keyVersion: number, raw: string): string {
  const mac = createHmac('sha256', key).update(canonicalizeIdentifier(raw), 'utf8').digest('base64url');
  return `v${keyVersion}.${mac}`;
}

export function tokenKeyVersion(token: string): number | undefined {
  const match = TOKEN_PATTERN.exec(token);
  return match ? Number(match[1]) : undefined;
}

/** Tokenizes many identifiers, computing each distinct canonical value once. */
export class Tokenizer {
  private readonly memo = new Map<string, string>();

  constructor(
    readonly key: Buffer,
    readonly keyVersion: number,
  ) {}

  token(raw: string): string {
    let token = this.memo.get(raw);
    if (token === undefined) {
      token = tokenize(this.key, this.keyVersion, raw);
      if (this.memo.size > 1_000_000) this.memo.clear();
      this.memo.set(raw, token);
    }
    return token;
  }
}

/**
 * A subject's date offset in days, within [-window, window] and never 0 (a zero shift would publish the real dates):
 * derived from the study key and the canonical identifier, so every date of one subject moves by the same amount
 * (intervals preserved) and the offset is never stored.
 */
export function dateShiftDays(key: Buffer, raw: string, window: number): number {
  if (window <= 0) return 0;
  const mac = createHmac('sha256', key)
    .update('steward-date-shift\0')
    .update(canonicalizeIdentifier(raw), 'utf8')
    .digest();
  const n = mac.readUInt32BE(0) % (2 * window);
  return n < window ? n - window : n - window + 1;
}

/** HIPAA Safe Harbor (45 CFR 164.514(b)(2)(i)(B)): 3-digit ZIP prefixes with 20,000 people or fewer become 000. */
export const LOW_POPULATION_ZIP3 = [
  '036',
  '059',
  '063',
  '102',
  '203',
  '556',
  '692',
  '790',
  '821',
  '823',
  '830',
  '831',
  '878',
  '879',
  '884',
  '890',
  '893',
] as const;

/**
 * A subject's tokens under every live key version of the study: what look-ups search for, since data and consent
 * keyed before a rotation carry older versions.
 */
export async function subjectTokens(
  keys: KeyStore,
  jurisdiction: string,
  studyId: string,
  raw: string,
): Promise<{ tokens: string[]; versions: number[] }> {
  const live = await keys.liveStudyKeys(jurisdiction, studyId);
  return { tokens: live.map((k) => tokenize(k.material, k.version, raw)), versions: live.map((k) => k.version) };
}
