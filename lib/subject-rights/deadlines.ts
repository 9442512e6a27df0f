/**
 * Deadlines of subject requests, from the jurisdiction's rule: due a duration after receipt, reminders a lead time
 * before, extensions up to the rule's maximum. Pure calendar arithmetic in UTC (no clock, no time-zone data): safe
 * inside workflows, so a deadline moved by an extension is computed where its timer runs.
 */

interface Parts {
  years: number;
  months: number;
  days: number;
  ms: number;
}

const DURATION = /^P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/;

/** The parts of an ISO 8601 duration such as `P1M`, `P30D` or `PT20S`; throws on anything else. */
export function durationParts(duration: string): Parts {
  const m = DURATION.exec(duration);
  if (!m) throw new Error(`"${duration}" is not an ISO 8601 duration such as P1M or P30D`);
  const n = (i: number) => Number(m[i] ?? 0);
  return {
    years: n(1),
    months: n(2),
    days: n(3) * 7 + n(4),
    ms: ((n(5) * 60 + n(6)) * 60 + n(7)) * 1000,
  };
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
}

/**
 * `at` plus `duration` (negated with `sign = -1`), in UTC: years and months move the calendar month and keep the day,
 * clamped to the month's last day (31 January + P1M is 28 or 29 February), then days and time are added.
 */
export function shiftIso(at: string, duration: string, sign: 1 | -1 = 1): string {
  const p = durationParts(duration);
  const start = new Date(at);
  if (Number.isNaN(start.getTime())) throw new Error(`"${at}" is not a date`);
  const months = start.getUTCMonth() + sign * (p.years * 12 + p.months);
  const year = start.getUTCFullYear() + Math.floor(months / 12);
  const month = ((months % 12) + 12) % 12;
  const day = Math.min(start.getUTCDate(), daysInMonth(year, month));
  const moved = Date.UTC(
    year,
    month,
    day,
    start.getUTCHours(),
    start.getUTCMinutes(),
    start.getUTCSeconds(),
    start.getUTCMilliseconds(),
  );
  return new Date(moved + sign * (p.days * 86_400_000 + p.ms)).toISOString();
}

/** Whether duration `a` is longer than `b` when both count from `from` (months differ in length). */
export function longerThan(a: string, b: string, from: string): boolean {
  return new Date(shiftIso(from, a)).getTime() > new Date(shiftIso(from, b)).getTime();
}

/** The sum of several durations, as one: `P1M` + `P15D` = `P1M15D`. */
export function sumDurations(durations: readonly string[]): string {
  const total: Parts = { years: 0, months: 0, days: 0, ms: 0 };
  for (const d of durations) {
    const p = durationParts(d);
    total.years += p.years;
    total.months += p.months;
    total.days += p.days;
    total.ms += p.ms;
  }
  const seconds = Math.round(total.ms / 1000);
  const date = `${total.years ? `${total.years}Y` : ''}${total.months ? `${total.months}M` : ''}${total.days ? `${total.days}D` : ''}`;
  const time = seconds ? `T${seconds}S` : '';
  return date || time ? `P${date}${time}` : 'P0D';
}

/** A request's due date: the rule's deadline from receipt, moved by every extension granted. */
export function dueAt(receivedAt: string, deadline: string, extensions: readonly string[]): string {
  const base = shiftIso(receivedAt, deadline);
  return extensions.length === 0 ? base : shiftIso(base, sumDurations(extensions));
}

/**
 * Why an extension by `by` cannot be granted, or undefined when it can: the rule allows none, or the extensions
 * together would pass its maximum.
 */
export function extensionProblem(
  rule: { deadline: string; extension?: string | undefined; legalBasis: string },
  receivedAt: string,
  granted: readonly string[],
  by: string,
): string | undefined {
  if (!rule.extension) return `the deadline cannot be extended (${rule.legalBasis})`;
  const base = shiftIso(receivedAt, rule.deadline);
  if (longerThan(sumDurations([...granted, by]), rule.extension, base)) {
    const used = granted.length > 0 ? `; already extended by ${sumDurations(granted)}` : '';
    return `an extension by ${by} passes the legal maximum of ${rule.extension} (${rule.legalBasis})${used}`;
  }
  return undefined;
}
