import { DateTime, Duration } from 'luxon';
import type { DatasetRetention } from '../../schemas/dataset';
import type { RetentionEvent, RetentionRule } from '../../schemas/jurisdiction';

/** The dates a rule may count from; a missing one leaves retain-until open. */
export type RetentionEvents = Partial<Record<RetentionEvent, string>>;

/** `at` plus an ISO 8601 duration, in UTC, as an ISO timestamp. */
export function addDuration(at: string, duration: string): string {
  return DateTime.fromISO(at, { zone: 'utc' }).plus(Duration.fromISO(duration)).toUTC().toISO()!;
}

/**
 * A dataset's retention under a rule: retain-until counts the rule's duration from the rule's event; until that event
 * is known (a trial not yet ended), retain-until is open. The Object Lock is set no shorter than the retention, and,
 * while retain-until is open, to the shortest it could be: the duration from curation.
 */
export function datasetRetention(dataClass: string, rule: RetentionRule, events: RetentionEvents): DatasetRetention {
  const basisDate = events[rule.countsFrom] ?? null;
  const until = basisDate ? addDuration(basisDate, rule.duration) : null;
  const curation = events.curation;
  return {
    until,
    duration: rule.duration,
    legalBasis: rule.legalBasis,
    rule: dataClass,
    countsFrom: rule.countsFrom,
    minimum: rule.minimum,
    basisDate,
    objectLock: rule.objectLock,
    lockedUntil: until ?? (curation ? addDuration(curation, rule.duration) : null),
  };
}

/**
 * A dataset's retention recomputed under a rule (its own, or a changed one), from the events its record holds and the
 * recorded end of its study's trial.
 */
export function retentionUnder(
  record: { dataClass: string; createdAt: string; retention: DatasetRetention },
  rule: RetentionRule,
  trialEnd: string | null | undefined,
): DatasetRetention {
  return datasetRetention(record.dataClass, rule, {
    curation: record.createdAt,
    'last-effective-date': record.createdAt,
    submission:
      record.retention.countsFrom === 'submission'
        ? (record.retention.basisDate ?? record.createdAt)
        : record.createdAt,
    ...(trialEnd ? { 'end-of-trial': `${trialEnd}T00:00:00.000Z` } : {}),
  });
}

/**
 * The Object Lock date once retain-until moves: it follows a retain-until still ahead, never shortens a COMPLIANCE
 * lock, and stays as it was when retain-until is already past (a past date cannot be set).
 */
export function nextLockedUntil(
  computed: DatasetRetention,
  rule: RetentionRule,
  previous: string | null,
  at: string,
): string | null {
  if (!computed.until || computed.until <= at) return previous;
  return rule.objectLock === 'COMPLIANCE' && previous && previous > computed.until ? previous : computed.until;
}
