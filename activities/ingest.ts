import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import { DateTime, Duration } from 'luxon';
import { DatasetRecordSchema, type DatasetRecord } from '../schemas/dataset';
import type { Jurisdiction } from '../schemas/jurisdiction';
import type { IngestPackageInput, PackageProblem } from '../schemas/workflows';
import type { KeyStore } from '../lib/keystore';
import { copyObject, deleteAllVersions, listObjects } from '../lib/objects';
import { readDatasetRecord, writeDatasetRecord } from '../lib/catalog';
import { summarizeProblems } from '../lib/package';
import { TokenPool } from '../lib/token-pool';
import { curatePackage, type CuratePackageInput, type CuratePackageResult } from './curate';
import { verifyPackage, type VerifiedPackage } from './verify';

export interface IngestActivityDeps {
  s3: S3Client;
  keys: KeyStore;
  jurisdiction: Jurisdiction;
  scratchDir: string;
  duckdbMemoryLimit?: string;
}

export interface QuarantinePackageInput {
  packageId: string;
  landing: { bucket: string; prefix: string };
  problems: PackageProblem[];
  workflowId: string;
  runId: string;
  rejectedAt: string;
}

export interface RecordDatasetInput {
  datasetId: string;
  ingest: IngestPackageInput;
  verified: VerifiedPackage;
  curated: CuratePackageResult;
  workflowId: string;
  runId: string;
  /** When the dataset came into being (workflow time, ISO 8601); retention runs from here. */
  createdAt: string;
}

export function quarantinePrefix(packageId: string): string {
  return `packages/${packageId}/`;
}

/** Ingestion activities for one jurisdiction. Each refuses buckets and packages of any other jurisdiction. */
export function createIngestActivities(deps: IngestActivityDeps) {
  const { s3, jurisdiction } = deps;
  const stageDir = path.join(deps.scratchDir, 'staged');
  const pool = new TokenPool();

  function assertOwnBucket(bucket: string): void {
    if (!Object.values(jurisdiction.buckets).includes(bucket)) {
      throw ApplicationFailure.nonRetryable(
        `bucket ${bucket} does not belong to jurisdiction ${jurisdiction.id}`,
        'JurisdictionViolation',
      );
    }
  }

  return {
    /** Reads only the catalog: a retry reads the same record. */
    async findDatasetActivity(input: { datasetId: string }): Promise<DatasetRecord | null> {
      return (await readDatasetRecord(s3, jurisdiction.buckets.catalog, input.datasetId)) ?? null;
    },

    /** Reads and hashes only; a retry repeats the same checks. */
    async verifyPackageActivity(input: IngestPackageInput): Promise<VerifiedPackage> {
      assertOwnBucket(input.landing.bucket);
      return verifyPackage(s3, jurisdiction, input, stageDir);
    },

    async curatePackageActivity(input: CuratePackageInput): Promise<CuratePackageResult> {
      assertOwnBucket(input.landing.bucket);
      return curatePackage({ ...deps, stageDir, pool, duckdbMemoryLimit: deps.duckdbMemoryLimit ?? '1GB' }, input);
    },

    /**
     * Moves a rejected package from landing to quarantine with a rejection note. Retry-safe: copies overwrite
     * the same keys, and landing versions already deleted are simply not found again.
     */
    async quarantinePackageActivity(input: QuarantinePackageInput): Promise<{ bucket: string; prefix: string }> {
      assertOwnBucket(input.landing.bucket);
      const bucket = jurisdiction.buckets.quarantine;
      const prefix = quarantinePrefix(input.packageId);
      for (const object of await listObjects(s3, input.landing.bucket, input.landing.prefix)) {
        const relative = object.key.slice(input.landing.prefix.length);
        await copyObject(
          s3,
          { bucket: input.landing.bucket, key: object.key },
          { bucket, key: `${prefix}payload/${relative}` },
        );
      }
      const note = {
        format: 'steward-rejection/1',
        packageId: input.packageId,
        jurisdiction: jurisdiction.id,
        reason: summarizeProblems(input.problems),
        problems: input.problems,
        rejectedAt: input.rejectedAt,
        workflowId: input.workflowId,
        runId: input.runId,
      };
      await s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: `${prefix}rejection.json`,
          Body: JSON.stringify(note, null, 2),
          ContentType: 'application/json',
        }),
      );
      await deleteAllVersions(s3, input.landing.bucket, input.landing.prefix);
      return { bucket, prefix };
    },

    /** Writes the catalog entry unless one exists: a retry, or the same package again, finds the first one. */
    async recordDatasetActivity(input: RecordDatasetInput): Promise<{ record: DatasetRecord; created: boolean }> {
      const existing = await readDatasetRecord(s3, jurisdiction.buckets.catalog, input.datasetId);
      if (existing) return { record: existing, created: false };
      const { metadata } = input.verified;
      const rule = jurisdiction.retention[metadata.dataClass]!;
      const until = DateTime.fromISO(input.createdAt, { zone: 'utc' }).plus(Duration.fromISO(rule.duration));
      const record: DatasetRecord = DatasetRecordSchema.parse({
        format: 'steward-dataset/1',
        datasetId: input.datasetId,
        packageId: input.ingest.packageId,
        jurisdiction: jurisdiction.id,
        studyId: metadata.studyId,
        protocolId: metadata.protocolId,
        dataClass: metadata.dataClass,
        classification: input.curated.classification,
        purpose: metadata.purpose,
        consentScopes: [metadata.purpose],
        sourceSystem: metadata.sourceSystem,
        keyVersions: input.curated.keyVersions,
        dateShiftDays: metadata.dateShiftDays ?? 0,
        createdAt: input.createdAt,
        retention: { until: until.toISO(), duration: rule.duration, legalBasis: rule.legalBasis },
        rows: input.curated.rows,
        inputs: input.verified.files,
        outputs: input.curated.outputs,
        lineage: {
          landing: input.ingest.landing,
          manifestSha256: input.ingest.manifestSha256,
          workflowId: input.workflowId,
          runId: input.runId,
          submittedBy: input.ingest.submittedBy,
        },
      });
      await writeDatasetRecord(s3, jurisdiction.buckets.catalog, record);
      return { record, created: true };
    },
  };
}

export type IngestActivities = ReturnType<typeof createIngestActivities>;
