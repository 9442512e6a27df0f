import type { ConsentEntry } from '../../schemas/consent';
import type { ExclusionReason } from '../../schemas/dataset';
import { consentExclusion, newerConsent } from './rules';

/** A study's consent records by subject token (the merged registry). */
export type ConsentRecords = ReadonlyMap<string, ConsentEntry>;

export interface ConsentDecision {
  /** The subject's newest record, undefined when there is none. */
  entry: ConsentEntry | undefined;
  /** Why the subject's rows are left out; undefined when the consent covers the purpose. */
  reason: ExclusionReason | undefined;
}

/** The subject's newest record among its tokens; of records equally new, the one under the earliest token given. */
export function newestConsent(records: ConsentRecords, tokens: readonly string[]): ConsentEntry | undefined {
  const found = tokens.map((t) => records.get(t)).filter((e): e is ConsentEntry => e !== undefined);
  return found.length > 0 ? found.reduce(newerConsent) : undefined;
}

/**
 * The consent decision of ingestion and preprocessing alike: of the records under the subject's tokens (one per live
 * key version the caller can compute, or the one token a curated dataset holds), the newest decision wins; then
 * whether it allows `purpose` on day `asOf` (YYYY-MM-DD, from the workflow). Every decision is recorded under the
 * token of every live key version, and a token made later gets the subject's newest decision linked to it (see
 * `linkEntry`), so one token of any live version is enough.
 */
export function decideConsent(
  records: ConsentRecords,
  tokens: readonly string[],
  purpose: string,
  asOf: string,
): ConsentDecision {
  const entry = newestConsent(records, tokens);
  return { entry, reason: consentExclusion(entry, purpose, asOf) };
}

/**
 * The record that links the subject's newest decision to `target`, one of its tokens (`tokens`, one per live key
 * version), or undefined when `target` already holds it or the subject has no record. Written where a raw identifier
 * is at hand (ingestion, re-pseudonymization), so a token made after a decision (a dataset under a newer key version)
 * or one a decision was not recorded under finds the newest decision. The link is a copy of the decision (dates and
 * recording time kept), so it never wins over a later decision under any token, and writing it again changes nothing.
 * It keeps what the token's own record said of the subject's count (`olderKeyRecord`); a token without one is counted
 * by the subject's other records.
 */
export function linkEntry(
  records: ConsentRecords,
  tokens: readonly string[],
  target: string,
): ConsentEntry | undefined {
  const own = records.get(target);
  const newest = newestConsent(records, [target, ...tokens.filter((t) => t !== target)]);
  if (!newest || newest === own) return undefined;
  const { olderKeyRecord: _older, ...decision } = newest;
  return { ...decision, token: target, ...(own && !own.olderKeyRecord ? {} : { olderKeyRecord: true as const }) };
}

/** The links (see `linkEntry`) that give each of the subject's tokens its newest decision. */
export function linkEntries(records: ConsentRecords, tokens: readonly string[]): ConsentEntry[] {
  return tokens.flatMap((t) => linkEntry(records, tokens, t) ?? []);
}

/**
 * One decision as records under each of the subject's tokens (`tokens` ordered by key version, oldest first), so a
 * look-up with a token of any live version finds it. The subject stays one subject of the registry: every record
 * but the one under the oldest version says so (`olderKeyRecord`), and that one keeps what its stored record said.
 */
export function entriesUnderTokens(
  entry: ConsentEntry,
  tokens: readonly string[],
  records: ConsentRecords,
): ConsentEntry[] {
  const { token: _token, olderKeyRecord: _older, ...decision } = entry;
  return tokens.map((token, i) => {
    const older = i > 0 || records.get(token)?.olderKeyRecord === true;
    return { ...decision, token, ...(older ? { olderKeyRecord: true as const } : {}) };
  });
}
