import type { S3Client } from '@aws-sdk/client-s3';
import { catalogWriterWorkflowId, ErrorType, nonRetryable } from '../contracts';
import { X509Certificate } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { openMessage } from '../lib/auth/messages';
import { fingerprintOf } from '../lib/pki/x509';
import {
  CatalogChangeBodySchema,
  mutationTarget,
  type CatalogMutation,
  type CatalogMutationResult,
} from '../schemas/catalog';
import { InternalMessageSchema } from '../schemas/message';
import type { Jurisdiction } from '../schemas/jurisdiction';
import { parseInput } from '../contracts/parse';
import { destroyVaultEntries, vaultShardKey } from '../lib/crypto/vault';
import { claimedDatasets, claimExpiredDatasets, claimProblem, releaseClaims } from '../lib/storage/claims';
import {
  applyRetentionRules,
  endTrial,
  releaseHold,
  RetentionChangeRefused,
  setHold,
} from '../lib/storage/retention-changes';
import { deleteVersions, listVersionsOf, versionSha256, type StoredVersion } from '../lib/storage/versions';
import { inLanes } from '../lib/runtime/lanes';
import {
  readDatasetRecord,
  readRequestClaim,
  readSourceRegistry,
  writeDatasetRecord,
  writeRequestClaim,
  writeSourceRegistry,
} from '../lib/storage/catalog';
import {
  closeSubjectRequest,
  liftRestriction,
  openSubjectRequest,
  recordRestriction,
  recordTombstone,
} from '../lib/storage/subjects';

/** Changes to shared catalog objects, run only by each object's single writer (`catalogWriterWorkflow`). */
export function createCatalogActivities({
  s3,
  jurisdiction,
  messageKey,
}: {
  s3: S3Client;
  jurisdiction: Jurisdiction;
  /** The jurisdiction's message key: only changes sealed with it are applied. */
  messageKey: Buffer;
}) {
  const bucket = jurisdiction.buckets.catalog;
  /** The change a sealed message asks of the calling writer; anything else is refused before it is read. */
  const changeOf = (message: unknown): CatalogMutation => {
    const writerId = Context.current().info.workflowExecution?.workflowId ?? '';
    const verdict = openMessage(messageKey, message, {
      kind: 'catalog.change',
      to: writerId,
      jurisdiction: jurisdiction.id,
    });
    if (!verdict.ok) throw nonRetryable(ErrorType.MessageRefused, verdict.reason);
    const { mutation } = parseInput(
      CatalogChangeBodySchema,
      InternalMessageSchema.parse(message).body,
      'applyCatalogMutationActivity',
    );
    if (catalogWriterWorkflowId(jurisdiction.id, mutationTarget(mutation)) !== writerId) {
      throw nonRetryable(ErrorType.MessageRefused, 'the change is for another catalog object’s writer');
    }
    return mutation;
  };
  return {
    /**
     * Applies a sealed change (see `changeOf`). Idempotent: each change states the object's new content, so applying
     * it again changes nothing.
     */
    async applyCatalogMutationActivity(raw: { message: unknown }): Promise<CatalogMutationResult> {
      const mutation = changeOf(raw.message);
      try {
        return await apply(mutation);
      } catch (error) {
        if (!(error instanceof RetentionChangeRefused)) throw error;
        const type =
          error.kind === 'not-found'
            ? ErrorType.DatasetNotFound
            : error.kind === 'busy'
              ? ErrorType.RetentionConflict
              : ErrorType.InvalidInput;
        throw nonRetryable(type, error.message);
      }
    },
  };

  async function apply(mutation: CatalogMutation): Promise<CatalogMutationResult> {
    switch (mutation.kind) {
      case 'dataset.outputs-replaced': {
        const record = await readDatasetRecord(s3, bucket, mutation.datasetId);
        if (!record) {
          throw nonRetryable(
            ErrorType.DatasetNotFound,
            `dataset ${mutation.datasetId} is not in the ${jurisdiction.id} catalog`,
          );
        }
        const same =
          JSON.stringify(record.outputs) === JSON.stringify(mutation.outputs) &&
          JSON.stringify(record.keyVersions) === JSON.stringify(mutation.keyVersions);
        if (same) return { changed: false, count: 0 };
        const busy = claimProblem(await claimedDatasets(s3, bucket, new Date(mutation.at)), [mutation.datasetId]);
        if (busy) throw new RetentionChangeRefused(busy, 'busy');
        await writeDatasetRecord(s3, bucket, {
          ...record,
          outputs: mutation.outputs,
          keyVersions: mutation.keyVersions,
          rePseudonymizedAt: mutation.at,
        });
        return { changed: true, count: mutation.outputs.length };
      }
      case 'request.claimed': {
        const claim = await readRequestClaim(s3, bucket, mutation.requestId);
        if (claim) {
          if (claim.workflowId === mutation.workflowId && claim.runId === mutation.runId) {
            return { changed: false, count: 0 };
          }
          // Another run of the same workflow id (a reset, a re-start of a closed one, a cron or retry run) is a replay
          // too: a signed request is used by one run.
          throw nonRetryable(
            ErrorType.AccessDenied,
            `request ${mutation.requestId} was already used by workflow ${claim.workflowId}${claim.runId ? ` run ${claim.runId}` : ''}: a replayed request is refused`,
          );
        }
        await writeRequestClaim(s3, bucket, { ...mutation, claimedAt: new Date().toISOString() });
        return { changed: true, count: 1 };
      }
      case 'source.registered': {
        let certificate: X509Certificate;
        try {
          certificate = new X509Certificate(mutation.certificatePem);
        } catch {
          throw nonRetryable(ErrorType.InvalidInput, 'the source certificate is not a readable X.509 certificate');
        }
        const fingerprint = fingerprintOf(certificate);
        const current = (await readSourceRegistry(s3, bucket, mutation.studyId)) ?? {
          format: 'steward-sources/1' as const,
          jurisdiction: jurisdiction.id,
          studyId: mutation.studyId,
          required: false,
          sources: [],
        };
        const existing = current.sources.find((s) => s.fingerprint === fingerprint);
        const required = current.required || mutation.required;
        if (existing?.name === mutation.name && required === current.required) {
          return { changed: false, count: current.sources.length, fingerprint, required };
        }
        const registered = {
          name: mutation.name,
          fingerprint,
          certificatePem: mutation.certificatePem,
          registeredAt: existing?.registeredAt ?? mutation.at,
          registeredBy: existing?.registeredBy ?? mutation.by,
        };
        const sources = [...current.sources.filter((s) => s.fingerprint !== fingerprint), registered];
        await writeSourceRegistry(s3, bucket, { ...current, required, sources });
        return { changed: true, count: sources.length, fingerprint, required };
      }
      case 'vault.entries-destroyed': {
        const destroyed = await destroyVaultEntries(s3, bucket, mutation.studyId, mutation.tokens);
        return { changed: destroyed > 0, count: destroyed };
      }
      case 'vault.shards-removed': {
        const keys = mutation.datasetIds.map((id) => vaultShardKey(mutation.studyId, id));
        const before = await listVersionsOf(s3, bucket, keys);
        const all = [...before.values()].flat();
        // What each version held, for the deletion certificates.
        const digests = new Map<StoredVersion, string | null>();
        await inLanes(all, 8, async (v) => void digests.set(v, await versionSha256(s3, bucket, v)));
        const refused = await deleteVersions(s3, bucket, all);
        if (refused.length > 0) {
          throw new Error(`storage refused to delete ${refused.length} vault shard versions (${refused[0]!.code})`);
        }
        const after = await listVersionsOf(s3, bucket, keys);
        return {
          changed: all.length > 0,
          count: all.length,
          removed: mutation.datasetIds.map((datasetId, i) => ({
            datasetId,
            versions: before.get(keys[i]!)!.map((v) => ({
              key: v.key,
              versionId: v.versionId,
              bytes: v.bytes,
              deleteMarker: v.deleteMarker,
              sha256: digests.get(v) ?? null,
            })),
            remaining: after.get(keys[i]!)!.length,
          })),
        };
      }
      case 'hold.set': {
        const set = await setHold(s3, bucket, jurisdiction.id, mutation.scope, mutation.hold);
        return {
          changed: set.changed,
          count: set.datasets.length,
          holdId: mutation.hold.holdId,
          datasets: set.datasets,
          stillHeld: [],
        };
      }
      case 'hold.released': {
        const released = await releaseHold(s3, bucket, jurisdiction.id, mutation.scope, mutation);
        return {
          changed: released.changed,
          count: released.released.length,
          holdId: released.holdId,
          datasets: released.released,
          stillHeld: released.stillHeld,
        };
      }
      case 'study.trial-ended': {
        const ended = await endTrial(s3, bucket, jurisdiction.id, mutation);
        return { changed: ended.changed, count: ended.changes.length, changes: ended.changes };
      }
      case 'retention.rules-changed': {
        const applied = await applyRetentionRules(s3, bucket, jurisdiction.id, mutation);
        return { changed: applied.changed, count: applied.changes.length, changes: applied.changes };
      }
      case 'retention.claim': {
        const scan = await claimExpiredDatasets(s3, bucket, jurisdiction.id, mutation);
        return { changed: scan.expired.length > 0, count: scan.expired.length, scan };
      }
      case 'retention.released': {
        const released = await releaseClaims(s3, bucket, mutation.sweepId);
        return { changed: released > 0, count: released };
      }
      case 'subject-request.opened': {
        const opened = await openSubjectRequest(s3, bucket, mutation);
        return { changed: opened.changed, count: 1, ...(opened.linkedTo ? { linkedTo: opened.linkedTo } : {}) };
      }
      case 'subject-request.closed':
        return { ...(await closeSubjectRequest(s3, bucket, mutation)), count: 1 };
      case 'subject.restricted':
        return recordRestriction(s3, bucket, jurisdiction.id, mutation);
      case 'subject.tombstoned':
        return recordTombstone(s3, bucket, { ...mutation, jurisdiction: jurisdiction.id, since: mutation.at });
      case 'dataset.rows-erased': {
        const record = await readDatasetRecord(s3, bucket, mutation.datasetId);
        if (!record) {
          throw nonRetryable(
            ErrorType.DatasetNotFound,
            `dataset ${mutation.datasetId} is not in the ${jurisdiction.id} catalog`,
          );
        }
        const done = record.erasures.some(
          (e) => e.requestId === mutation.erasure.requestId && e.table === mutation.erasure.table,
        );
        if (done) return { changed: false, count: 0 };
        const busy = claimProblem(await claimedDatasets(s3, bucket, new Date(mutation.erasure.at)), [
          mutation.datasetId,
        ]);
        if (busy) throw new RetentionChangeRefused(busy, 'busy');
        await writeDatasetRecord(s3, bucket, {
          ...record,
          outputs: record.outputs.map((o) => (o.table === mutation.output.table ? mutation.output : o)),
          erasures: [...record.erasures, mutation.erasure],
        });
        return { changed: true, count: mutation.erasure.rowsRemoved };
      }
      case 'subject.restriction-lifted':
        return { ...(await liftRestriction(s3, bucket, mutation)), count: 1 };
    }
  }
}
