import { ErrorType, nonRetryable } from '../contracts';
import type { Jurisdiction } from '../schemas/jurisdiction';

/**
 * A worker serves one jurisdiction: it refuses requests for another, and buckets of another, even when a workflow
 * (or anyone calling its activities) asks.
 */
export function assertOwnJurisdiction(jurisdiction: Jurisdiction, requested: string): void {
  if (requested !== jurisdiction.id) {
    throw nonRetryable(
      ErrorType.JurisdictionViolation,
      `this worker serves jurisdiction ${jurisdiction.id} and refuses work for ${requested}`,
    );
  }
}

export function assertOwnBucket(jurisdiction: Jurisdiction, bucket: string): void {
  if (!Object.values(jurisdiction.buckets).includes(bucket)) {
    throw nonRetryable(
      ErrorType.JurisdictionViolation,
      `bucket ${bucket} does not belong to jurisdiction ${jurisdiction.id}`,
    );
  }
}
