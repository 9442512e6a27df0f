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
