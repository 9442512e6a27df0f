import type { TrustAnchor } from '../lib/pki/authority';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { putJson } from '../lib/storage/json';
import { datasetObjectPrefix, packagePrefix, quarantinedFileKey, rejectionKey } from '../lib/storage/layout';
import { DatasetRecordSchema, type DatasetRecord } from '../schemas/dataset';
import {
  CuratePackageInputSchema,
  DiscardCurationInputSchema,
  FindDatasetInputSchema,
  IngestPackageInputSchema,
  QuarantinePackageInputSchema,
  RecordDatasetInputSchema,
  type CuratePackageInput,
  type CuratePackageResult,
  type DiscardCurationInput,
  type DiscardCurationResult,
  type FindDatasetInput,
  type IngestPackageInput,
  type ObjectLocation,
  type QuarantinePackageInput,
  type RecordDatasetInput,
  type RecordDatasetResult,
  type RejectionNote,
  type VerifiedPackage,
  RejectionNoteSchema,
} from '../schemas/ingest';
import type { Jurisdiction } from '../schemas/jurisdiction';
import { parseInput } from '../contracts/parse';
import type { KeyStore } from '../lib/crypto/keystore';
import { TokenPool } from '../lib/crypto/token-pool';
import { vaultShardKey } from '../lib/storage/layout';
import { rejectionMessage } from '../lib/package/rules';
import { readDatasetRecord, writeDatasetRecord } from '../lib/storage/catalog';
import { indexDatasets } from '../lib/subject-rights/subject-index';
import { withScratchDb } from '../lib/tabular/scratch';
import { copyObject, deleteAllVersions, listObjects } from '../lib/storage/objects';
import { curatePackage } from './curate';
import { assertOwnBucket, assertOwnJurisdiction } from './guards';
import { heartbeating } from './heartbeat';
import { verifyPackage } from './verify';

export interface IngestActivityDeps {
  s3: S3Client;
  keys: KeyStore;
  jurisdiction: Jurisdiction;
  /** This process's temporary space. */
  scratchDir: string;
  /** Space on this machine that outlives the process: staged inputs and finished outputs, for retries to reuse. */
  workDir: string;
  duckdbMemoryLimit?: string;
  /** DuckDB threads per package being curated, 1 to 4 (default 2). */
  duckdbThreads?: number;
  /** The Steward CA and its CRL: a source certificate the CA issued can be revoked there. */
  trust: TrustAnchor;
}

/** Ingestion activities for one jurisdiction. Each refuses buckets and packages of any other jurisdiction. */
export function createIngestActivities(deps: IngestActivityDeps) {
  const { s3, jurisdiction } = deps;
  const stageDir = path.join(deps.workDir, 'staged');
  const outputDir = path.join(deps.workDir, 'curated');
  const pool = new TokenPool();

  return {
    /** Reads only the catalog: a retry reads the same record. */
    async findDatasetActivity(raw: FindDatasetInput): Promise<DatasetRecord | null> {
      const input = parseInput(FindDatasetInputSchema, raw, 'findDatasetActivity');
      return (await readDatasetRecord(s3, jurisdiction.buckets.catalog, input.datasetId)) ?? null;
    },

    /** Reads and hashes only; a retry repeats the checks, skipping files an earlier attempt reported checked. */
    async verifyPackageActivity(raw: IngestPackageInput): Promise<VerifiedPackage> {
      const input = parseInput(IngestPackageInputSchema, raw, 'verifyPackageActivity');
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      assertOwnBucket(jurisdiction, input.landing.bucket);
      return verifyPackage(s3, jurisdiction, input, { stageDir, trust: deps.trust });
    },

    /** Retry-safe and resumable: see `curatePackage`. */
    async curatePackageActivity(raw: CuratePackageInput): Promise<CuratePackageResult> {
      const input = parseInput(CuratePackageInputSchema, raw, 'curatePackageActivity');
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      assertOwnBucket(jurisdiction, input.landing.bucket);
      return curatePackage(
        { ...deps, workDir: outputDir, stageDir, pool, duckdbMemoryLimit: deps.duckdbMemoryLimit ?? '1GB' },
        input,
      );
    },

    /**
     * Moves a rejected package from landing to quarantine with a rejection note. Retry-safe: copies overwrite
     * the same keys, and landing versions already deleted are simply not found again.
     */
    async quarantinePackageActivity(raw: QuarantinePackageInput): Promise<ObjectLocation> {
      const input = parseInput(QuarantinePackageInputSchema, raw, 'quarantinePackageActivity');
      assertOwnBucket(jurisdiction, input.landing.bucket);
      const bucket = jurisdiction.buckets.quarantine;
      const prefix = packagePrefix(input.packageId);
      for (const object of await listObjects(s3, input.landing.bucket, input.landing.prefix)) {
        const relative = object.key.slice(input.landing.prefix.length);
        await copyObject(
          s3,
          { bucket: input.landing.bucket, key: object.key },
          { bucket, key: quarantinedFileKey(prefix, relative) },
        );
      }
      const note: RejectionNote = {
        format: 'steward-rejection/1',
        packageId: input.packageId,
        jurisdiction: jurisdiction.id,
        reason: rejectionMessage(input.problems),
        problems: input.problems,
        rejectedAt: input.rejectedAt,
        workflowId: input.workflowId,
        runId: input.runId,
      };
      await putJson(s3, bucket, rejectionKey(prefix), RejectionNoteSchema, note, { pretty: true });
      await deleteAllVersions(s3, input.landing.bucket, input.landing.prefix);
      return { bucket, prefix };
    },

    /**
     * Deletes what an ingestion that did not finish left behind: every version of its curated outputs and of its vault
     * shard, unless the dataset was recorded (then it is a dataset, and stays). Retry-safe: deleting what is gone
     * deletes nothing.
     */
    async discardCurationActivity(raw: DiscardCurationInput): Promise<DiscardCurationResult> {
      const input = parseInput(DiscardCurationInputSchema, raw, 'discardCurationActivity');
      if (await readDatasetRecord(s3, jurisdiction.buckets.catalog, input.datasetId)) return { deleted: 0 };
      // Never a dataset (no record): its outputs' retention protects nothing.
      const outputs = await deleteAllVersions(s3, jurisdiction.buckets.curated, datasetObjectPrefix(input.datasetId), {
        bypassGovernance: true,
      });
      const shard = await deleteAllVersions(
        s3,
        jurisdiction.buckets.catalog,
        vaultShardKey(input.studyId, input.datasetId),
      );
      return { deleted: outputs + shard };
    },

    /**
     * Writes the catalog entry unless one exists: a retry, or the same package again, finds the first one. The
     * package's ingestion workflow is the record's only creator (one workflow id per package). Heartbeats while it
     * reads and writes, so an attempt lost with its worker is retried within the heartbeat timeout.
     */
    async recordDatasetActivity(raw: RecordDatasetInput): Promise<RecordDatasetResult> {
      const input = parseInput(RecordDatasetInputSchema, raw, 'recordDatasetActivity');
      assertOwnJurisdiction(jurisdiction, input.ingest.jurisdiction);
      const progress = { phase: 'reading the catalog' };
      return heartbeating(
        () => progress,
        async () => {
          const existing = await readDatasetRecord(s3, jurisdiction.buckets.catalog, input.datasetId);
          let result: RecordDatasetResult = { record: existing!, created: false };
          if (!existing) {
            progress.phase = 'writing the record';
            result = { record: await writeRecord(input), created: true };
          }
          // Into the subject index, so discovery finds the new dataset without reading it again (a retry after the
          // record was written indexes it here too; indexing twice changes nothing).
          progress.phase = 'indexing the subjects';
          await withScratchDb(deps.scratchDir, 'index', (conn, dir) =>
            indexDatasets({ s3, jurisdiction }, conn, dir, [input.datasetId]),
          );
          return result;
        },
      );
    },
  };

  /** The dataset record of a finished curation, written to the catalog. */
  async function writeRecord(input: RecordDatasetInput): Promise<DatasetRecord> {
    const { metadata } = input.verified;
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
      retention: input.curated.retention,
      holds: [],
      rows: input.curated.rows,
      inputs: input.verified.files,
      outputs: input.curated.outputs,
      lineage: {
        landing: input.ingest.landing,
        manifestSha256: input.ingest.manifestSha256,
        workflowId: input.workflowId,
        runId: input.runId,
        submittedBy: input.ingest.submittedBy,
        source: input.verified.source,
      },
    });
    await writeDatasetRecord(s3, jurisdiction.buckets.catalog, record);
    return record;
  }
}

export type IngestActivities = ReturnType<typeof createIngestActivities>;
