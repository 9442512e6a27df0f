import {
  PutObjectLegalHoldCommand,
  PutObjectRetentionCommand,
  GetObjectRetentionCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Context } from '@temporalio/activity';
import { scanDatasets, StudyRecords } from '../lib/storage/claims';
import { datasetObjectPrefix, EXPORT_RECORDS_PREFIX } from '../lib/storage/layout';
import { getJson } from '../lib/storage/json';
import { ExportRecordSchema } from '../schemas/subject-request';
import { scanPackages } from '../lib/storage/packages';
import { inLanes } from '../lib/runtime/lanes';
import { listVersionsOf } from '../lib/storage/versions';
import type { Jurisdiction } from '../schemas/jurisdiction';
import { parseInput } from '../contracts/parse';
import {
  LegalHoldChangeInputSchema,
  ObjectLockChangeInputSchema,
  ObjectLockProgressSchema,
  ScanDatasetsInputSchema,
  ScanPackagesInputSchema,
  ScanExportsInputSchema,
  type ExportScan,
  type ScanExportsInput,
  type LegalHoldChangeInput,
  type ObjectLockChangeInput,
  type ObjectLockProgress,
  type PackageScan,
  type RetentionScan,
  type ScanDatasetsInput,
  type ScanPackagesInput,
} from '../schemas/retention';
import { assertOwnJurisdiction } from './guards';
import { heartbeating, previousHeartbeat } from './heartbeat';

function heartbeat(details: unknown): void {
  try {
    Context.current().heartbeat(details);
  } catch {
    // Outside an activity (a unit test calling the function directly): nothing to report to.
  }
}

/** Retention: scans, legal holds and Object Lock dates, in one jurisdiction's buckets (deletion is `erasure`). */
export function createRetentionActivities({ s3, jurisdiction }: { s3: S3Client; jurisdiction: Jurisdiction }) {
  const { catalog, curated } = jurisdiction.buckets;

  /** Every version of every object of the datasets, eight datasets at a time. */
  async function datasetVersions(datasetIds: string[]): Promise<{ key: string; versionId: string | null }[]> {
    const listed = await listVersionsOf(
      s3,
      curated,
      datasetIds.map((id) => datasetObjectPrefix(id)),
    );
    return [...listed.values()].flat().filter((v) => !v.deleteMarker);
  }

  return {
    /** A dry run's look at one page of the catalog: reads only. */
    async scanDatasetsActivity(raw: ScanDatasetsInput): Promise<RetentionScan> {
      const input = parseInput(ScanDatasetsInputSchema, raw, 'scanDatasetsActivity');
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      return scanDatasets(s3, catalog, jurisdiction.id, input);
    },

    /**
     * A page of access packages' records (200, in request order after `after`), with those whose expiry has come by
     * `asOf`: reads only.
     */
    async scanExportsActivity(raw: ScanExportsInput): Promise<ExportScan> {
      const input = parseInput(ScanExportsInputSchema, raw, 'scanExportsActivity');
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      const page = await s3.send(
        new ListObjectsV2Command({
          Bucket: catalog,
          Prefix: EXPORT_RECORDS_PREFIX,
          MaxKeys: 200,
          ...(input.after ? { StartAfter: input.after } : {}),
        }),
      );
      const keys = (page.Contents ?? []).map((o) => o.Key!).filter(Boolean);
      const expired: ExportScan['expired'] = [];
      for (const key of keys) {
        const record = await getJson(s3, catalog, key, ExportRecordSchema);
        if (record && record.expiresAt <= input.asOf) {
          expired.push({
            requestId: record.requestId,
            bucket: record.bucket,
            prefix: record.prefix,
            expiresAt: record.expiresAt,
            legalBasis: record.legalBasis,
          });
        }
      }
      return { next: page.IsTruncated ? (keys.at(-1) ?? null) : null, scanned: keys.length, expired };
    },

    /** A page of raw uploads in landing or quarantine, decided under the raw-staging rule: reads only. */
    async scanPackagesActivity(raw: ScanPackagesInput): Promise<PackageScan> {
      const input = parseInput(ScanPackagesInputSchema, raw, 'scanPackagesActivity');
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      return scanPackages(s3, jurisdiction, { ...input, studies: new StudyRecords(s3, catalog, jurisdiction.id) });
    },

    /**
     * Switches S3 legal hold on or off for every version of the datasets' objects. Idempotent. Returns how many
     * versions it set.
     */
    async setLegalHoldActivity(raw: LegalHoldChangeInput): Promise<{ versions: number }> {
      const input = parseInput(LegalHoldChangeInputSchema, raw, 'setLegalHoldActivity');
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      const versions = await datasetVersions(input.datasetIds);
      let done = 0;
      await inLanes(versions, 8, async (v) => {
        await s3.send(
          new PutObjectLegalHoldCommand({
            Bucket: curated,
            Key: v.key,
            ...(v.versionId ? { VersionId: v.versionId } : {}),
            LegalHold: { Status: input.on ? 'ON' : 'OFF' },
          }),
        );
        done += 1;
        if (done % 100 === 0) heartbeat({ done, of: versions.length });
      });
      return { versions: versions.length };
    },

    /**
     * Sets each dataset's Object Lock retain-until on every version of its objects, to the date its record now states
     * (when that date is still ahead). Shortening GOVERNANCE retention uses the sweep's override. Idempotent: a version
     * already locked until that date is left as it is. Heartbeats the datasets done, and a retry resumes after them.
     */
    async applyObjectLockActivity(raw: ObjectLockChangeInput): Promise<{ versions: number }> {
      const input = parseInput(ObjectLockChangeInputSchema, raw, 'applyObjectLockActivity');
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      const resumed = ObjectLockProgressSchema.safeParse(previousHeartbeat());
      const progress: ObjectLockProgress = resumed.success ? resumed.data : { changesDone: 0, versions: 0 };
      return heartbeating(
        () => progress,
        async () => {
          for (const change of input.changes.slice(progress.changesDone)) {
            progress.versions += await lockDataset(change, input.now);
            progress.changesDone += 1;
          }
          return { versions: progress.versions };
        },
      );
    },
  };

  /** Sets one dataset's Object Lock date on every version of its objects; returns how many versions it changed. */
  async function lockDataset(change: ObjectLockChangeInput['changes'][number], now: string): Promise<number> {
    let count = 0;
    if (!change.lockedUntil || change.lockedUntil <= now) return count;
    const versions = await datasetVersions([change.datasetId]);
    const until = new Date(change.lockedUntil);
    await inLanes(versions, 8, async (v) => {
      const target = { Bucket: curated, Key: v.key, ...(v.versionId ? { VersionId: v.versionId } : {}) };
      const current = await s3.send(new GetObjectRetentionCommand(target)).catch(() => undefined);
      const currentUntil = current?.Retention?.RetainUntilDate;
      if (
        currentUntil &&
        currentUntil.getTime() === until.getTime() &&
        current?.Retention?.Mode === change.objectLock
      ) {
        return;
      }
      await s3.send(
        new PutObjectRetentionCommand({
          ...target,
          Retention: { Mode: change.objectLock, RetainUntilDate: until },
          ...(currentUntil && currentUntil > until ? { BypassGovernanceRetention: true } : {}),
        }),
      );
      count += 1;
    });
    return count;
  }
}
