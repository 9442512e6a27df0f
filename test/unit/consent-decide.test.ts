import { describe, expect, it } from 'vitest';
import type { ConsentEntry } from '../../schemas/consent';
import {
  decideConsent,
  entriesUnderTokens,
  linkEntries,
  linkEntry,
  type ConsentRecords,
} from '../../lib/consent/decide';
import { registrySubjects } from '../../lib/consent/rules';
import { mergeConsentEntries } from '../../lib/storage/catalog';

const given: ConsentEntry = {
  token: 'v1.a',
  scopes: ['primary-research', 'secondary-research'],
  status: 'given',
  icfVersion: 'v1',
  givenOn: '2024-01-01',
  withdrawnOn: null,
  expiresOn: null,
  importedAt: '2024-01-02T00:00:00.000Z',
};
const withdrawal: ConsentEntry = {
  ...given,
  status: 'withdrawn',
  withdrawnOn: '2025-03-01',
  importedAt: '2025-03-01T10:00:00.000Z',
  withdrawal: { effectiveOn: '2025-03-01', scopes: [], reason: 'asked' },
};

/** The registry as read: parts merged per token, the later decision winning. */
function registry(...entries: ConsentEntry[]): Map<string, ConsentEntry> {
  const merged = new Map<string, ConsentEntry>();
  mergeConsentEntries(merged, entries);
  return merged;
}

describe('one consent decision', () => {
  it('the newest record among the subject tokens wins, whatever their order', () => {
    const records = registry(given, { ...withdrawal, token: 'v2.a' });
    for (const tokens of [
      ['v1.a', 'v2.a'],
      ['v2.a', 'v1.a'],
    ]) {
      expect(decideConsent(records, tokens, 'secondary-research', '2025-06-01')).toEqual({
        entry: { ...withdrawal, token: 'v2.a' },
        reason: 'withdrawn',
      });
    }
    // As of a day before the withdrawal took effect, the same record still allows the purpose.
    expect(decideConsent(records, ['v1.a', 'v2.a'], 'secondary-research', '2025-02-28').reason).toBeUndefined();
    expect(decideConsent(records, ['v1.b', 'v2.b'], 'secondary-research', '2025-06-01')).toEqual({
      entry: undefined,
      reason: 'no-consent',
    });
  });

  it('a decision written under every live version is found with one token of any of them', () => {
    const before = registry(given);
    const records = registry(given, ...entriesUnderTokens(withdrawal, ['v1.a', 'v2.a'], before));
    const all = decideConsent(records, ['v1.a', 'v2.a'], 'secondary-research', '2025-06-01');
    expect(all.reason).toBe('withdrawn');
    expect(decideConsent(records, ['v1.a'], 'secondary-research', '2025-06-01')).toEqual({
      entry: { ...withdrawal, token: 'v1.a' },
      reason: 'withdrawn',
    });
    expect(decideConsent(records, ['v2.a'], 'secondary-research', '2025-06-01')).toEqual({
      entry: { ...withdrawal, token: 'v2.a', olderKeyRecord: true },
      reason: 'withdrawn',
    });
    // Still one subject of the registry.
    expect(registrySubjects([...records.values()])).toBe(1);
  });

  it('records under every version keep counting each subject once, and keep what the oldest one said', () => {
    const stored = registry({ ...given, olderKeyRecord: true });
    expect(entriesUnderTokens({ ...withdrawal, olderKeyRecord: true }, ['v1.a', 'v2.a', 'v3.a'], new Map())).toEqual([
      { ...withdrawal, token: 'v1.a' },
      { ...withdrawal, token: 'v2.a', olderKeyRecord: true },
      { ...withdrawal, token: 'v3.a', olderKeyRecord: true },
    ]);
    expect(entriesUnderTokens(withdrawal, ['v1.a'], stored)).toEqual([
      { ...withdrawal, token: 'v1.a', olderKeyRecord: true },
    ]);
  });

  it('a token made after the decision gets it linked: the one token then decides as all of them do', () => {
    const records = registry(given);
    // Without the link, a dataset re-keyed to v2 would meet no record.
    expect(decideConsent(records, ['v2.a'], 'secondary-research', '2025-06-01').reason).toBe('no-consent');
    const link = linkEntry(records, ['v1.a', 'v2.a'], 'v2.a');
    expect(link).toEqual({ ...given, token: 'v2.a', olderKeyRecord: true });
    const linked = registry(given, link!);
    expect(decideConsent(linked, ['v2.a'], 'secondary-research', '2025-06-01')).toEqual({
      entry: link,
      reason: undefined,
    });
    expect(decideConsent(linked, ['v1.a', 'v2.a'], 'secondary-research', '2025-06-01').reason).toBeUndefined();
    expect(registrySubjects([...linked.values()])).toBe(1);
    // Linking again changes nothing; a subject without records gets no link.
    expect(linkEntry(linked, ['v1.a', 'v2.a'], 'v2.a')).toBeUndefined();
    expect(linkEntry(linked, ['v1.b', 'v2.b'], 'v2.b')).toBeUndefined();
  });

  it('a link never wins over a later decision, and a stale one is replaced by the newest', () => {
    const link = { ...given, token: 'v2.a', olderKeyRecord: true as const };
    // A withdrawal recorded meanwhile under both tokens wins over the copy, whatever the order of the parts.
    const later = entriesUnderTokens(withdrawal, ['v1.a', 'v2.a'], new Map());
    for (const records of [registry(given, link, ...later), registry(...later, link, given)]) {
      expect(decideConsent(records, ['v2.a'], 'secondary-research', '2025-06-01').reason).toBe('withdrawn');
      expect(linkEntry(records, ['v1.a', 'v2.a'], 'v2.a')).toBeUndefined();
    }
    // A withdrawal recorded under v1 alone (before v2 existed) is linked over the stale copy.
    const records: ConsentRecords = registry(given, link, withdrawal);
    expect(linkEntry(records, ['v1.a', 'v2.a'], 'v2.a')).toEqual({
      ...withdrawal,
      token: 'v2.a',
      olderKeyRecord: true,
    });
  });

  it('a decision recorded under the newer token alone is linked back to the older one, the subject counted once', () => {
    // As a registry written before decisions went under every live version: the withdrawal under v2 only.
    const records = registry(given, { ...withdrawal, token: 'v2.a', olderKeyRecord: true });
    expect(decideConsent(records, ['v1.a'], 'secondary-research', '2025-06-01').reason).toBeUndefined();
    const links = linkEntries(records, ['v2.a', 'v1.a']);
    expect(links).toEqual([{ ...withdrawal, token: 'v1.a' }]);
    const healed = registry(given, { ...withdrawal, token: 'v2.a', olderKeyRecord: true }, ...links);
    expect(decideConsent(healed, ['v1.a'], 'secondary-research', '2025-06-01').reason).toBe('withdrawn');
    expect(registrySubjects([...healed.values()])).toBe(1);
    expect(linkEntries(healed, ['v2.a', 'v1.a'])).toEqual([]);
  });
});
