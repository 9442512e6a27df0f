import { describe, expect, it } from 'vitest';
import { getJurisdiction, JURISDICTIONS } from '../../jurisdictions';
import { claimProblem } from '../../lib/storage/claims';
import { datasetFacts, decideRetention, explainDecision, type RetentionFacts } from '../../lib/retention/precedence';
import { addDuration, datasetRetention } from '../../lib/retention/rules';
import { calendarAsCron, cronProblem } from '../../lib/retention/schedule';
import { RAW_PACKAGE_CLASS } from '../../schemas/jurisdiction';
import type { LegalHold } from '../../schemas/dataset';

const NOW = '2030-06-15T12:00:00.000Z';
const PAST = '2020-01-01T00:00:00.000Z';
const FUTURE = '2040-01-01T00:00:00.000Z';

/**
 * The precedence, written as the table a DPO reads (first matching row wins), independently of the engine's code:
 *   legal hold in force                               → keep (legal-hold)
 *   duty to keep not over (or not known yet)          → keep (minimum-retention)
 *   approved erasure request                          → delete (erasure-request)
 *   retention ended                                   → delete (retention-expired)
 *   otherwise                                         → keep (retention-running)
 */
const TABLE: { when: (f: RetentionFacts) => boolean; then: string }[] = [
  { when: (f) => f.held, then: 'keep/legal-hold' },
  { when: (f) => f.keepUntil === null || f.keepUntil > f.asOf, then: 'keep/minimum-retention' },
  { when: (f) => f.erasureRequested, then: 'delete/erasure-request' },
  { when: (f) => f.expiresAt !== null && f.expiresAt <= f.asOf, then: 'delete/retention-expired' },
  { when: () => true, then: 'keep/retention-running' },
];

describe('precedence engine', () => {
  it('decides every combination of hold, duty to keep, erasure request and expiry as the table says', () => {
    const dates = [null, PAST, NOW, FUTURE];
    let cases = 0;
    const seen = new Set<string>();
    for (const held of [false, true]) {
      for (const keepUntil of dates) {
        for (const erasureRequested of [false, true]) {
          for (const expiresAt of dates) {
            const facts: RetentionFacts = { held, keepUntil, erasureRequested, expiresAt, asOf: NOW };
            const decision = decideRetention(facts);
            const expected = TABLE.find((row) => row.when(facts))!.then;
            expect(`${decision.action}/${decision.reason}`, JSON.stringify(facts)).toBe(expected);
            expect(explainDecision(decision, facts)).toMatch(decision.action === 'keep' ? /^kept: / : /^to delete: /);
            seen.add(expected);
            cases += 1;
          }
        }
      }
    }
    expect(cases).toBe(2 * 4 * 2 * 4);
    // Every row of the table is reached by some combination.
    expect(seen.size).toBe(TABLE.length);
  });

  it('a hold outweighs an erasure request and an ended retention; a duty to keep outweighs an erasure request', () => {
    expect(
      decideRetention({ held: true, keepUntil: PAST, erasureRequested: true, expiresAt: PAST, asOf: NOW }),
    ).toEqual({
      action: 'keep',
      reason: 'legal-hold',
    });
    expect(
      decideRetention({ held: false, keepUntil: FUTURE, erasureRequested: true, expiresAt: FUTURE, asOf: NOW }),
    ).toEqual({
      action: 'keep',
      reason: 'minimum-retention',
    });
    expect(
      decideRetention({ held: false, keepUntil: PAST, erasureRequested: true, expiresAt: FUTURE, asOf: NOW }),
    ).toEqual({
      action: 'delete',
      reason: 'erasure-request',
    });
  });

  it('takes a dataset’s facts from its rule, its holds and its study’s holds', () => {
    const eu = getJurisdiction('eu');
    const hold: LegalHold = {
      holdId: 'hold-1',
      reason: 'r',
      setAt: PAST,
      setBy: {} as LegalHold['setBy'],
      releasedAt: null,
      releasedBy: null,
      releaseReason: null,
    };
    const released = { ...hold, releasedAt: PAST };
    const trial = datasetRetention('clinical-trial', eu.retention['clinical-trial']!, { curation: PAST });
    const dataset = { retention: trial, holds: [], createdAt: PAST };
    // Open retention (trial not ended) and a legal minimum: kept whatever else.
    expect(datasetFacts(dataset, { holds: [] }, NOW)).toMatchObject({ held: false, keepUntil: null, expiresAt: null });
    expect(decideRetention(datasetFacts(dataset, { holds: [] }, NOW, true)).reason).toBe('minimum-retention');
    expect(datasetFacts(dataset, { holds: [hold] }, NOW).held).toBe(true);
    expect(datasetFacts({ ...dataset, holds: [released] }, { holds: [released] }, NOW).held).toBe(false);
    // Raw staging has no legal minimum: an erasure request may delete it at once.
    const raw = datasetRetention(RAW_PACKAGE_CLASS, eu.retention[RAW_PACKAGE_CLASS]!, {
      submission: PAST,
      curation: PAST,
    });
    expect(
      decideRetention(
        datasetFacts({ retention: { ...raw, until: FUTURE }, holds: [], createdAt: PAST }, undefined, NOW, true),
      ),
    ).toEqual({
      action: 'delete',
      reason: 'erasure-request',
    });
  });
});

describe('retention rules', () => {
  it('count from their event, and stay open until it is recorded', () => {
    const eu = getJurisdiction('eu');
    const rule = eu.retention['clinical-trial']!;
    expect(rule.countsFrom).toBe('end-of-trial');
    const open = datasetRetention('clinical-trial', rule, { curation: '2026-01-10T09:00:00.000Z' });
    expect(open).toMatchObject({
      until: null,
      basisDate: null,
      lockedUntil: '2051-01-10T09:00:00.000Z',
      minimum: true,
    });
    const ended = datasetRetention('clinical-trial', rule, {
      curation: '2026-01-10T09:00:00.000Z',
      'end-of-trial': '2027-03-31T00:00:00.000Z',
    });
    expect(ended).toMatchObject({ until: '2052-03-31T00:00:00.000Z', lockedUntil: '2052-03-31T00:00:00.000Z' });
    const hipaa = datasetRetention('clinical-trial', getJurisdiction('us').retention['clinical-trial']!, {
      curation: '2026-01-10T09:00:00.000Z',
    });
    expect(hipaa.until).toBe('2032-01-10T09:00:00.000Z');
    expect(addDuration('2024-02-29T00:00:00.000Z', 'P1Y')).toBe('2025-02-28T00:00:00.000Z');
    expect(addDuration('2026-01-01T00:00:00.000Z', 'P30D')).toBe('2026-01-31T00:00:00.000Z');
  });

  it('every jurisdiction keeps raw staging 30 days from submission, as an upper limit, and evidence as a minimum', () => {
    for (const j of Object.values(JURISDICTIONS)) {
      expect(j.retention[RAW_PACKAGE_CLASS]).toMatchObject({
        duration: 'P30D',
        countsFrom: 'submission',
        minimum: false,
      });
      expect(j.retention['audit-trail']!.minimum).toBe(true);
      expect(j.retention['deletion-certificate']!.minimum).toBe(true);
      expect(j.retention['preprocessing-output']!.legalBasis.length).toBeGreaterThan(10);
    }
  });
});

describe('sweep schedules', () => {
  it('show their calendar as the cron expression it was set from, and refuse what is not cron', () => {
    const range = (start: number, end = start, step = 1) => ({ start, end, step });
    expect(
      calendarAsCron({
        second: [range(0)],
        minute: [range(30)],
        hour: [range(3)],
        dayOfMonth: [range(1, 31)],
        month: [{ start: 'JANUARY', end: 'DECEMBER', step: 1 }],
        year: [],
        dayOfWeek: [{ start: 'MONDAY', end: 'MONDAY', step: 1 }],
        comment: '',
      } as never),
    ).toBe('30 3 * * 1');
    expect(
      calendarAsCron({
        second: [range(0)],
        minute: [range(0, 59, 15)],
        hour: [range(0, 23)],
        dayOfMonth: [range(1, 31)],
        month: [
          { start: 'MARCH', end: 'MARCH', step: 1 },
          { start: 'SEPTEMBER', end: 'SEPTEMBER', step: 1 },
        ],
        year: [],
        dayOfWeek: [{ start: 'SUNDAY', end: 'SATURDAY', step: 1 }],
        comment: '',
      } as never),
    ).toBe('0-59/15 * * 3,9 *');
    expect(cronProblem('0 2 * * *')).toBeUndefined();
    expect(cronProblem('daily')).toMatch(/five fields/);
  });

  it('a sweep at work refuses changes to the datasets it claimed, naming them and the sweep', () => {
    const claimed = new Map([
      ['ds-eu-a', 'sweep-1'],
      ['ds-eu-b', 'sweep-1'],
    ]);
    expect(claimProblem(claimed, ['ds-eu-c'])).toBeUndefined();
    expect(claimProblem(claimed, ['ds-eu-b', 'ds-eu-c'])).toBe(
      '1 dataset(s) are being deleted by a retention sweep: ds-eu-b (sweep sweep-1)',
    );
  });
});
