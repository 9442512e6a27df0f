import type { ConsentEntry } from '../../schemas/consent';
import type { ExclusionReason } from '../../schemas/dataset';

/**
 * Whether a subject's consent record allows using their data for `purpose` on day `asOf` (YYYY-MM-DD).
 * Returns undefined when it does, otherwise why not.
 */
export function consentExclusion(
  entry: ConsentEntry | undefined,
  purpose: string,
  asOf: string,
): ExclusionReason | undefined {
  if (!entry) return 'no-consent';
  if (entry.status === 'withdrawn' && (!entry.withdrawnOn || entry.withdrawnOn <= asOf)) return 'withdrawn';
  if (entry.givenOn > asOf) return 'not-yet-valid';
  if (entry.expiresOn && entry.expiresOn < asOf) return 'expired';
  if (!entry.scopes.includes(purpose)) return 'scope';
  return undefined;
}

/**
 * The day a record's decision was taken: a withdrawal the DPO recorded (of some or all scopes), else the withdrawal
 * date, else the consent date. A recorded withdrawal thus wins over any older record imported again later.
 */
export function consentDecisionDate(entry: ConsentEntry): string {
  return entry.withdrawal?.effectiveOn ?? entry.withdrawnOn ?? entry.givenOn;
}

/**
 * Of two records for one subject, the one that wins: the later decision (withdrawal or consent date); of two decisions
 * of the same date, the one recorded later; of two recorded together (rows of one file), the withdrawal, so a
 * withdrawal on the day of a consent takes effect whatever the order of the rows.
 */
export function newerConsent(a: ConsentEntry, b: ConsentEntry): ConsentEntry {
  const [dateA, dateB] = [consentDecisionDate(a), consentDecisionDate(b)];
  if (dateA !== dateB) return dateA > dateB ? a : b;
  if (a.importedAt !== b.importedAt) return a.importedAt > b.importedAt ? a : b;
  if (a.status !== b.status) return a.status === 'withdrawn' ? a : b;
  return a;
}

/**
 * How many subjects a registry's records are about: a subject with records under several key versions (one per token)
 * is counted once, by its record under the oldest version.
 */
export function registrySubjects(entries: readonly ConsentEntry[]): number {
  return entries.filter((e) => !e.olderKeyRecord).length;
}
