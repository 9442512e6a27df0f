import { setTimeout as sleep } from 'node:timers/promises';
import type { S3Client } from '@aws-sdk/client-s3';
import { Context } from '@temporalio/activity';
import { ErrorType, nonRetryable } from '../contracts';
import {
  AuditQueryInputSchema,
  AuditSegmentSchema,
  type AuditEvent,
  type AuditQueryInput,
  type AuditQueryResult,
  LocateEventInputSchema,
  LocateEventsInputSchema,
  type LocateEventsInput,
  SealSegmentInputSchema,
  type AuditChainRef,
  type AuditTrailHead,
  type LocateEventInput,
  type SealSegmentInput,
} from '../schemas/audit';
import type { Jurisdiction } from '../schemas/jurisdiction';
import { parseInput } from '../contracts/parse';
import { headHash, sealSegment, ZERO_HASH } from '../lib/audit/segment';
import {
  evidenceRetainUntil,
  listStoredSegments,
  putEvidence,
  readSegment,
  segmentBytes,
  segmentKey,
} from '../lib/audit/store';
import type { KeyStore } from '../lib/crypto/keystore';
import { tokenize } from '../lib/crypto/pseudonymize';
import type { SignerMaterial } from '../lib/pki/authority';
import { getObjectOrUndefined } from '../lib/storage/objects';
import { assertOwnJurisdiction } from './guards';

export interface AuditActivityDeps {
  s3: S3Client;
  keys: KeyStore;
  jurisdiction: Jurisdiction;
  /** The jurisdiction's evidence signer. */
  signer: () => Promise<SignerMaterial>;
}

/** The audit trail's storage side: sealing segments into the evidence bucket, and finding sealed events. */
export function createAuditActivities({ s3, keys, jurisdiction, signer }: AuditActivityDeps) {
  const bucket = jurisdiction.buckets.evidence;
  /**
   * Reads the latest sealed segments (newest first) until every event is found, looking again every 200 ms for up to
   * ten seconds while the trail seals them (it does within about a second); then fails, for the activity to retry.
   */
  async function locate(eventIds: string[]): Promise<AuditChainRef[]> {
    const wanted = new Set(eventIds);
    const found = new Map<string, AuditChainRef>();
    const read = new Set<number>();
    const deadline = Date.now() + 10_000;
    for (;;) {
      const stored = await listStoredSegments(s3, bucket);
      for (const { seq, versionId } of stored.slice(-50).reverse()) {
        if (read.has(seq)) continue;
        read.add(seq);
        const segment = AuditSegmentSchema.parse(await readSegment(s3, bucket, seq, versionId));
        for (const entry of segment.entries) {
          if (!wanted.has(entry.event.id)) continue;
          found.set(entry.event.id, {
            jurisdiction: jurisdiction.id,
            eventId: entry.event.id,
            position: entry.position,
            segment: seq,
            eventHash: entry.hash,
          });
        }
        if (found.size === wanted.size) return eventIds.map((id) => found.get(id)!);
      }
      const missing = eventIds.filter((id) => !found.has(id));
      if (Date.now() > deadline) {
        throw new Error(`${missing.length} audit events are not sealed yet (${missing[0]}, …)`);
      }
      await sleep(200);
    }
  }

  return {
    /** Where the stored trail ends: what a trail that starts afresh continues from. Reads only. */
    async readAuditHeadActivity(input: { jurisdiction: string }): Promise<AuditTrailHead> {
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      const last = (await listStoredSegments(s3, bucket)).at(-1);
      if (last === undefined) return { seq: 0, position: 0, prevEventHash: ZERO_HASH, prevSegmentHash: ZERO_HASH };
      const segment = AuditSegmentSchema.parse(await readSegment(s3, bucket, last.seq, last.versionId));
      return {
        seq: last.seq + 1,
        position: segment.head.firstPosition + segment.head.count,
        prevEventHash: segment.head.lastEventHash,
        prevSegmentHash: headHash(segment.head),
      };
    },

    /**
     * Seals events as segment `head.seq` and stores it write-once under Object Lock. Retry-safe: sealing is
     * deterministic, so a retry produces the same bytes and finds them stored; different bytes under that number mean
     * a second writer, which is refused.
     */
    async sealAuditSegmentActivity(raw: SealSegmentInput): Promise<AuditTrailHead> {
      const input = parseInput(SealSegmentInputSchema, raw, 'sealAuditSegmentActivity');
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      const segment = sealSegment({
        jurisdiction: jurisdiction.id,
        seq: input.head.seq,
        firstPosition: input.head.position,
        prevEventHash: input.head.prevEventHash,
        prevSegmentHash: input.head.prevSegmentHash,
        sealedAt: input.sealedAt,
        events: input.events,
        signer: await signer(),
      });
      const bytes = segmentBytes(segment);
      const key = segmentKey(input.head.seq);
      const stored = await getObjectOrUndefined(s3, bucket, key);
      if (stored && !stored.equals(bytes)) {
        throw nonRetryable(
          ErrorType.AuditChainConflict,
          `audit segment ${input.head.seq} of ${jurisdiction.id} is already stored with other content`,
        );
      }
      if (!stored) {
        await putEvidence(
          s3,
          bucket,
          key,
          bytes,
          'application/json',
          evidenceRetainUntil(jurisdiction, 'audit-trail', input.sealedAt),
        );
      }
      return {
        seq: input.head.seq + 1,
        position: input.head.position + input.events.length,
        prevEventHash: segment.head.lastEventHash,
        prevSegmentHash: headHash(segment.head),
      };
    },

    /**
     * Where a sealed event sits: segment, position and chain hash, for a certificate to cite. Looks from the newest
     * segment back; fails (retryably) while the event is still waiting to be sealed.
     */
    async locateAuditEventActivity(raw: LocateEventInput): Promise<AuditChainRef> {
      const input = parseInput(LocateEventInputSchema, raw, 'locateAuditEventActivity');
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      return (await locate([input.eventId]))[0]!;
    },

    /** Where each event sits in the sealed trail, in the order asked; retried until all are sealed. */
    async locateAuditEventsActivity(raw: LocateEventsInput): Promise<AuditChainRef[]> {
      const input = parseInput(LocateEventsInputSchema, raw, 'locateAuditEventsActivity');
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      return locate(input.eventIds);
    },

    /**
     * Who did what, when and why: the sealed events matching every filter, oldest first. A subject identifier is
     * tokenized here, in the jurisdiction, under every live key version of its study. Reads only.
     */
    async queryAuditTrailActivity(raw: AuditQueryInput): Promise<AuditQueryResult> {
      const query = parseInput(AuditQueryInputSchema, raw, 'queryAuditTrailActivity');
      assertOwnJurisdiction(jurisdiction, query.jurisdiction);
      const tokens = new Set<string>(query.token ? [query.token] : []);
      if (query.subject) {
        for (const key of await keys.liveStudyKeys(jurisdiction.id, query.studyId!)) {
          tokens.add(tokenize(key.material, key.version, query.subject));
        }
      }
      const matches = (event: AuditEvent): boolean =>
        (!query.actor ||
          event.principal?.id === query.actor ||
          event.principal?.serial === query.actor.toLowerCase()) &&
        (!query.datasetId || event.targets.datasetId === query.datasetId) &&
        (!query.studyId || event.targets.studyId === query.studyId || query.subject !== undefined) &&
        (tokens.size === 0 || (event.targets.subjectTokens ?? []).some((t) => tokens.has(t))) &&
        (!query.action || event.action === query.action) &&
        (!query.since || event.at >= query.since) &&
        (!query.until || event.at <= query.until);
      const events: AuditQueryResult['events'] = [];
      const stored = await listStoredSegments(s3, bucket);
      let truncated = false;
      for (const { seq, versionId } of stored) {
        Context.current().heartbeat({ segment: seq });
        const segment = AuditSegmentSchema.parse(await readSegment(s3, bucket, seq, versionId));
        for (const entry of segment.entries) {
          if (!matches(entry.event)) continue;
          if (events.length >= query.limit) truncated = true;
          else events.push({ position: entry.position, segment: seq, event: entry.event });
        }
      }
      return {
        jurisdiction: jurisdiction.id,
        events,
        segmentsRead: stored.length,
        truncated,
        subjectTokens: [...tokens],
      };
    },
  };
}
