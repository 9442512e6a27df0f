import { createHash } from 'node:crypto';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Jurisdiction } from '../schemas/jurisdiction';
import { parseInput } from '../schemas/parse';
import {
  LookUpTokenInputSchema,
  ReidentificationEventSchema,
  type LookUpTokenInput,
  type ReidentificationEvent,
  type ReidentifyResult,
} from '../schemas/vault';
import type { KeyStore } from '../lib/crypto/keystore';
import { lookUpToken } from '../lib/crypto/vault';
import { assertOwnJurisdiction } from './guards';

/** Evidence objects are kept under S3 Object Lock for the documentation retention of the jurisdiction. */
const AUDIT_RETENTION_YEARS = 6;

export function createVaultActivities({
  s3,
  keys,
  jurisdiction,
}: {
  s3: S3Client;
  keys: KeyStore;
  jurisdiction: Jurisdiction;
}) {
  return {
    /** Writes one audit event, write-once, to the jurisdiction's evidence bucket. Retry-safe: the key is the event id. */
    async recordAuditEventActivity(raw: ReidentificationEvent): Promise<void> {
      const event = parseInput(ReidentificationEventSchema, raw, 'recordAuditEventActivity');
      assertOwnJurisdiction(jurisdiction, event.jurisdiction);
      const body = JSON.stringify({ format: 'steward-audit-event/1', ...event });
      const retainUntil = new Date(event.at);
      retainUntil.setUTCFullYear(retainUntil.getUTCFullYear() + AUDIT_RETENTION_YEARS);
      await s3.send(
        new PutObjectCommand({
          Bucket: jurisdiction.buckets.evidence,
          Key: `audit/events/${event.at.slice(0, 10)}/${event.eventId}.json`,
          Body: body,
          ContentType: 'application/json',
          ChecksumAlgorithm: 'SHA256',
          ChecksumSHA256: createHash('sha256').update(body).digest('base64'),
          ObjectLockMode: 'GOVERNANCE',
          ObjectLockRetainUntilDate: retainUntil,
        }),
      );
    },

    /** Reads only: finds and unseals the token's vault entry. */
    async reidentifyActivity(raw: LookUpTokenInput): Promise<ReidentifyResult> {
      const input = parseInput(LookUpTokenInputSchema, raw, 'reidentifyActivity');
      const key = await keys.vaultKey(jurisdiction.id, input.studyId);
      const identifier = await lookUpToken(s3, jurisdiction.buckets.catalog, input.studyId, key, input.token);
      return { found: identifier !== undefined, identifier: identifier ?? null };
    },
  };
}
