import { activeHolds, type DatasetRetention, type LegalHold } from '../../schemas/dataset';

/**
 * What keeps or deletes data, in order (the precedence Steward applies wherever it decides: sweeps now, erasure next):
 * 1. a legal hold keeps it, whatever else applies;
 * 2. a legal duty to keep it (minimum retention not yet over, or not yet known) keeps it, even against an erasure request;
 * 3. an erasure request deletes it;
 * 4. expired retention deletes it;
 * otherwise it is kept while its retention runs.
 */
export interface RetentionFacts {
  /** Any legal hold in force. */
  held: boolean;
  /** Until when the law requires keeping it; null when that is not known yet (e.g. the trial has not ended). */
  keepUntil: string | null;
  /** An approved erasure request covers it. */
  erasureRequested: boolean;
  /** When its retention ends (storage limitation): null while open. */
  expiresAt: string | null;
  /** The moment decided for (ISO 8601). */
  asOf: string;
}

export type RetentionDecision =
  | { action: 'keep'; reason: 'legal-hold' | 'minimum-retention' | 'retention-running' }
  | { action: 'delete'; reason: 'erasure-request' | 'retention-expired' };

export function decideRetention(facts: RetentionFacts): RetentionDecision {
  if (facts.held) return { action: 'keep', reason: 'legal-hold' };
  if (facts.keepUntil === null || facts.asOf < facts.keepUntil) return { action: 'keep', reason: 'minimum-retention' };
  if (facts.erasureRequested) return { action: 'delete', reason: 'erasure-request' };
  if (facts.expiresAt !== null && facts.expiresAt <= facts.asOf)
    return { action: 'delete', reason: 'retention-expired' };
  return { action: 'keep', reason: 'retention-running' };
}

/** The sentence a dry run, a skipped dataset or a certificate gives for a decision. */
export function explainDecision(decision: RetentionDecision, facts: RetentionFacts): string {
  switch (decision.reason) {
    case 'legal-hold':
      return 'kept: a legal hold is in force';
    case 'minimum-retention':
      return facts.keepUntil === null
        ? 'kept: its retention has not started (the event it counts from is not recorded yet)'
        : `kept: the law requires keeping it until ${facts.keepUntil}`;
    case 'erasure-request':
      return 'to delete: an approved erasure request covers it and no duty to keep it remains';
    case 'retention-expired':
      return `to delete: its retention ended on ${facts.expiresAt}`;
    case 'retention-running':
      return `kept: its retention runs until ${facts.expiresAt ?? 'an open date'}`;
  }
}

/** The facts about one dataset: its retention, its holds and its study's, at `asOf`. */
export function datasetFacts(
  dataset: { retention: DatasetRetention; holds: LegalHold[]; createdAt: string },
  study: { holds: LegalHold[] } | undefined,
  asOf: string,
  erasureRequested = false,
): RetentionFacts {
  const { retention } = dataset;
  return {
    held: activeHolds(dataset).length > 0 || (study ? activeHolds(study).length > 0 : false),
    // Without a legal minimum, nothing requires keeping it: the duty to keep ended when it was created.
    keepUntil: retention.minimum ? retention.until : dataset.createdAt,
    erasureRequested,
    expiresAt: retention.until,
    asOf,
  };
}
