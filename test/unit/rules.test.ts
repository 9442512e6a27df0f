import { Duration } from 'luxon';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { getJurisdiction, JURISDICTION_IDS, JURISDICTIONS } from '../../jurisdictions';
import { JurisdictionSchema } from '../../schemas/jurisdiction';
import { PackageMetadataSchema } from '../../schemas/package';
import { ConsentCsvRowSchema, type ConsentEntry } from '../../schemas/consent';
import { consentExclusion, newerConsent } from '../../lib/consent/rules';
import { parseMemoryLimit } from '../../lib/tabular/load';
import { smallMetadata } from '../helpers';

describe('jurisdictions', () => {
  it('are all valid data with a retention rule and legal basis per data class', () => {
    expect(JURISDICTION_IDS).toEqual(['ch', 'eu', 'uk', 'us']);
    for (const j of Object.values(JURISDICTIONS)) {
      // Buckets are named after the jurisdiction and their role, so no two jurisdictions can share one.
      for (const [role, bucket] of Object.entries(j.buckets)) expect(bucket).toBe(`steward-${j.id}-${role}`);
      // Every retention duration is a real, positive span of time with a stated legal basis.
      for (const [dataClass, rule] of Object.entries(j.retention)) {
        const duration = Duration.fromISO(rule.duration);
        expect(duration.isValid, `${j.id} ${dataClass}`).toBe(true);
        expect(duration.as('days'), `${j.id} ${dataClass}`).toBeGreaterThan(0);
        expect(rule.legalBasis.length, `${j.id} ${dataClass}`).toBeGreaterThan(10);
      }
      expect(Object.keys(j.retention)).toEqual(
        expect.arrayContaining(['clinical-trial', 'raw-staging', 'access-export']),
      );
      expect(new Set(Object.values(j.buckets)).size).toBe(6);
    }
    expect(getJurisdiction('us').dsr.erasure).toBeNull();
    expect(getJurisdiction('eu').retention['clinical-trial']!.duration).toBe('P25Y');
  });

  it('an unknown one is a clear error listing the known ones', () => {
    expect(() => getJurisdiction('mars')).toThrowErrorMatchingInlineSnapshot(
      `[UnknownJurisdictionError: unknown jurisdiction "mars"; known jurisdictions: ch, eu, uk, us]`,
    );
  });

  it('a malformed jurisdiction file is refused with the field named', () => {
    const broken = {
      ...getJurisdiction('eu'),
      retention: { 'clinical-trial': { duration: '25 years', legalBasis: 'x', classification: 'y' } },
    };
    const result = JurisdictionSchema.safeParse(broken);
    expect(result.success).toBe(false);
    expect(z.prettifyError(result.error!)).toMatchInlineSnapshot(`
      "✖ must be an ISO 8601 duration such as P25Y or P30D
        → at retention["clinical-trial"].duration"
    `);
  });
});

describe('package metadata', () => {
  it('accepts the documented shape', () => {
    expect(PackageMetadataSchema.parse(smallMetadata()).tables[0]!.columns).toHaveLength(5);
  });

  it('names each broken rule and where', () => {
    const meta = smallMetadata();
    const table = meta.tables[0]!;
    const broken = {
      ...meta,
      purpose: 'Primary Research',
      tables: [
        {
          ...table,
          columns: [
            ...table.columns.map((c) => (c.name === 'full_name' ? { ...c, type: 'integer' } : c)),
            { name: 'subject_id', type: 'string', role: 'subject-id' },
            { name: 'visit_date2', type: 'string', role: 'date' },
          ],
        },
      ],
    };
    const result = PackageMetadataSchema.safeParse(broken);
    expect(z.prettifyError(result.error!)).toMatchInlineSnapshot(`
      "✖ must be lowercase letters, digits or "-"
        → at purpose
      ✖ a table needs exactly one subject-id column, found 2
        → at tables[0].columns
      ✖ a direct-identifier column must have type "string"
        → at tables[0].columns[1].type
      ✖ a date column must have type "date" or "timestamp"
        → at tables[0].columns[6].type
      ✖ duplicate column "subject_id"
        → at tables[0].columns[5].name"
    `);
  });
});

describe('consent', () => {
  const entry: ConsentEntry = {
    token: 'v1.x',
    scopes: ['primary-research'],
    status: 'given',
    icfVersion: 'v2',
    givenOn: '2025-01-10',
    withdrawnOn: null,
    expiresOn: '2026-01-10',
    importedAt: '2025-01-11T00:00:00Z',
  };
  it.each([
    [undefined, '2025-06-01', 'no-consent'],
    [entry, '2025-06-01', undefined],
    [entry, '2025-01-09', 'not-yet-valid'],
    [entry, '2026-01-10', undefined],
    [entry, '2026-01-11', 'expired'],
    [{ ...entry, scopes: ['biobank'] }, '2025-06-01', 'scope'],
    [{ ...entry, status: 'withdrawn', withdrawnOn: '2025-03-01' }, '2025-06-01', 'withdrawn'],
    [{ ...entry, status: 'withdrawn', withdrawnOn: '2025-03-01' }, '2025-02-01', undefined],
  ] as const)('%o on %s → %s', (e, asOf, reason) => {
    expect(consentExclusion(e as ConsentEntry | undefined, 'primary-research', asOf)).toBe(reason);
  });

  it('the later decision wins', () => {
    const withdrawn: ConsentEntry = { ...entry, status: 'withdrawn', withdrawnOn: '2025-05-01' };
    expect(newerConsent(entry, withdrawn)).toBe(withdrawn);
    expect(newerConsent(withdrawn, entry)).toBe(withdrawn);
    const renewed: ConsentEntry = { ...entry, givenOn: '2025-07-01' };
    expect(newerConsent(withdrawn, renewed)).toBe(renewed);
  });

  it('a consent and a withdrawal of the same date in one import: the withdrawal wins, whatever the row order', () => {
    const given: ConsentEntry = { ...entry, givenOn: '2025-03-02', expiresOn: null };
    const withdrawn: ConsentEntry = { ...entry, status: 'withdrawn', withdrawnOn: '2025-03-02', expiresOn: null };
    expect(newerConsent(given, withdrawn)).toBe(withdrawn);
    expect(newerConsent(withdrawn, given)).toBe(withdrawn);
    expect(consentExclusion(newerConsent(given, withdrawn), 'primary-research', '2025-03-02')).toBe('withdrawn');
    // Imported later, a consent of the same date is a new decision (the re-import reports it as a conflict).
    const renewed: ConsentEntry = { ...given, importedAt: '2025-03-03T00:00:00Z' };
    expect(newerConsent(withdrawn, renewed)).toBe(renewed);
  });

  it('a CSV row given with a withdrawal date is refused, not imported as a consent', () => {
    const result = ConsentCsvRowSchema.safeParse({
      subject_id: 'S',
      scopes: 'primary-research',
      status: 'given',
      icf_version: 'v1',
      given_on: '2025-03-02',
      withdrawn_on: '2025-03-02',
    });
    expect(z.prettifyError(result.error!)).toMatchInlineSnapshot(`
      "✖ must be empty when status is given (a withdrawal has status withdrawn)
        → at withdrawn_on"
    `);
  });

  it('CSV rows are validated with the field named', () => {
    const result = ConsentCsvRowSchema.safeParse({
      subject_id: 'S',
      scopes: 'Primary',
      status: 'withdrawn',
      icf_version: 'v1',
      given_on: '2025-13-01',
    });
    expect(z.prettifyError(result.error!)).toMatchInlineSnapshot(`
      "✖ must be a date in YYYY-MM-DD form
        → at given_on
      ✖ is required when status is withdrawn
        → at withdrawn_on
      ✖ must be lowercase letters, digits or "-"
        → at scopes[0]"
    `);
  });
});

describe('memory limits', () => {
  it('parses DuckDB sizes', () => {
    expect(parseMemoryLimit('1GB')).toBe(2 ** 30);
    expect(parseMemoryLimit('192MB')).toBe(192 * 2 ** 20);
    expect(() => parseMemoryLimit('lots')).toThrow('"lots" is not a memory size');
  });
});
