import type { S3Client } from '@aws-sdk/client-s3';
import { z } from 'zod';
import { ErrorType, nonRetryable } from '../contracts';
import { preprocessJobPrefix, runDocumentKey } from '../lib/storage/layout';
import { openHighRiskDeviations } from '../lib/qualification/deviations';
import { baselineInForce } from '../lib/qualification/documents';
import type { BaselineRef } from '../schemas/common';
import { parseInput } from '../contracts/parse';
import { datasetRetention } from '../lib/retention/rules';
import { readDatasetRecord, readRunDocument, writeDatasetRecord } from '../lib/storage/catalog';
import { indexDatasets } from '../lib/subject-rights/subject-index';
import { withScratchDb } from '../lib/tabular/scratch';
import { DatasetRecordSchema, type DatasetRecord } from '../schemas/dataset';
import { DatasetIdSchema } from '../schemas/ingest';
import type { Jurisdiction } from '../schemas/jurisdiction';
import {
  RunDocumentRefSchema,
  RunDocumentSchema,
  type PreprocessInput,
  type RunDocument,
  type RunDocumentRef,
} from '../schemas/preprocess';
import { assertOwnBucket, assertOwnJurisdiction } from './guards';

export const PreparePreprocessInputSchema = z.object({
  jurisdiction: z.string(),
  datasetIds: z.array(DatasetIdSchema).min(1),
  table: z.string().optional(),
  at: z.iso.datetime(),
});
export type PreparePreprocessInput = z.infer<typeof PreparePreprocessInputSchema>;

export interface PreparePreprocessResult {
  inputs: PreprocessInput[];
  /** The Object Lock of outputs (retention class `preprocessing-output`), null when it is not set. */
  lock: { mode: 'GOVERNANCE' | 'COMPLIANCE'; until: string } | null;
  /** The configuration baseline in force, which the run documentation names (null: none approved). */
  baseline: BaselineRef | null;
}

export const RecordPreprocessOutputsInputSchema = z.object({
  jurisdiction: z.string(),
  document: RunDocumentSchema,
  documentRef: RunDocumentRefSchema,
});
export type RecordPreprocessOutputsInput = z.infer<typeof RecordPreprocessOutputsInputSchema>;

/** The dataset a job's outputs from one input dataset make, as the catalog records it. */
function outputRecord(
  jurisdiction: Jurisdiction,
  source: DatasetRecord,
  document: RunDocument,
  documentRef: RunDocumentRef,
  datasetId: string,
): DatasetRecord {
  const outputs = document.outputs.filter((o) => o.datasetId === datasetId);
  const inputs = document.inputs.filter((i) => i.datasetId === source.datasetId);
  const rule = jurisdiction.retention['preprocessing-output']!;
  const rowsIn = inputs.reduce((n, i) => n + i.rowsIn, 0);
  const rowsOut = outputs.reduce((n, o) => n + o.rows, 0);
  const sourceColumns = new Map(source.outputs.flatMap((o) => o.columns.map((c) => [c.name, c.role])));
  return DatasetRecordSchema.parse({
    format: 'steward-dataset/1',
    datasetId,
    packageId: document.jobId,
    jurisdiction: jurisdiction.id,
    studyId: source.studyId,
    protocolId: source.protocolId,
    dataClass: 'preprocessing-output',
    classification: rule.classification,
    purpose: document.pipeline.purpose,
    consentScopes: source.consentScopes,
    sourceSystem: `steward-preprocess ${document.pipeline.name}@${document.pipeline.version}`,
    keyVersions: source.keyVersions,
    dateShiftDays: source.dateShiftDays,
    createdAt: document.finishedAt,
    retention: datasetRetention('preprocessing-output', rule, { curation: document.finishedAt }),
    holds: [],
    rows: {
      in: rowsIn,
      curated: rowsOut,
      excluded: inputs.reduce((n, i) => n + i.rowsExcluded, 0),
      excludedByReason: {},
    },
    inputs: inputs.map((i) => ({
      path: `s3://${i.bucket}/${i.key}?versionId=${i.versionId ?? 'null'}`,
      sha256: i.sha256,
      bytes: i.bytes,
    })),
    outputs: outputs.map((o) => ({
      table: o.table,
      source: `${o.fromDatasetId}/${o.table}`,
      bucket: o.bucket,
      key: o.key,
      versionId: o.versionId,
      sha256: o.sha256,
      bytes: o.bytes,
      columns: o.columns.map((c) => ({ ...c, role: sourceColumns.get(c.name) ?? 'derived' })),
      rows: { in: rowsIn, curated: o.rows, excluded: rowsIn - o.rows, excludedByReason: {} },
    })),
    derivedFrom: inputs.map((i) => ({
      datasetId: i.datasetId,
      table: i.table,
      bucket: i.bucket,
      key: i.key,
      versionId: i.versionId,
      sha256: i.sha256,
    })),
    run: { jobId: document.jobId, ...documentRef },
    lineage: {
      landing: { bucket: documentRef.bucket, prefix: preprocessJobPrefix(document.jobId) },
      manifestSha256: documentRef.sha256,
      workflowId: document.workflowId,
      runId: document.runId,
      submittedBy: document.requestedBy,
    },
  });
}

/** The short activities of a job, on the jurisdiction's main worker: reading the catalog and recording outputs. */
export function createPreprocessCatalogActivities({
  s3,
  jurisdiction,
  scratchDir,
  caPem,
}: {
  s3: S3Client;
  jurisdiction: Jurisdiction;
  scratchDir: string;
  /** The Steward CA, to know the baseline in force by QA's signature. */
  caPem?: () => string;
}) {
  return {
    /** The exact object versions a job reads, and the retention its outputs get. */
    async preparePreprocessActivity(raw: PreparePreprocessInput): Promise<PreparePreprocessResult> {
      const input = parseInput(PreparePreprocessInputSchema, raw, 'preparePreprocessActivity');
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      const deviations = await openHighRiskDeviations(s3, jurisdiction.buckets.catalog);
      if (deviations.length > 0) {
        throw nonRetryable(
          ErrorType.DeviationOpen,
          `preprocessing in ${jurisdiction.id} is refused while a high-risk deviation from the configuration baseline is open: ${deviations
            .map((d) => `${d.deviationId} (${d.state}; ${d.finding.check}: ${d.finding.text})`)
            .join('; ')}; QA closes it with steward deviations close`,
        );
      }
      const inputs: PreprocessInput[] = [];
      for (const datasetId of input.datasetIds) {
        const record = await readDatasetRecord(s3, jurisdiction.buckets.catalog, datasetId);
        if (!record) {
          throw nonRetryable(
            ErrorType.DatasetNotFound,
            `dataset ${datasetId} is not in the ${jurisdiction.id} catalog`,
          );
        }
        const tables = record.outputs.map((o) => o.table);
        const output = input.table
          ? record.outputs.find((o) => o.table === input.table)
          : record.outputs.length === 1
            ? record.outputs[0]
            : undefined;
        if (!output) {
          throw nonRetryable(
            ErrorType.InvalidInput,
            input.table
              ? `dataset ${datasetId} has no table ${input.table}; its tables: ${tables.join(', ')}`
              : `dataset ${datasetId} has tables ${tables.join(', ')}: the pipeline must name one ("table")`,
          );
        }
        assertOwnBucket(jurisdiction, output.bucket);
        inputs.push({
          datasetId,
          studyId: record.studyId,
          table: output.table,
          bucket: output.bucket,
          key: output.key,
          versionId: output.versionId,
          sha256: output.sha256,
          bytes: output.bytes,
          subjectColumn: output.columns.find((c) => c.role === 'subject-id')?.name ?? null,
        });
      }
      const rule = jurisdiction.retention['preprocessing-output'];
      if (!rule) {
        throw nonRetryable(
          ErrorType.InvalidInput,
          `jurisdiction ${jurisdiction.id} has no retention rule for preprocessing-output`,
        );
      }
      const retention = datasetRetention('preprocessing-output', rule, { curation: input.at });
      return {
        inputs,
        lock: retention.lockedUntil ? { mode: retention.objectLock, until: retention.lockedUntil } : null,
        baseline: caPem ? await baselineInForce(s3, jurisdiction.buckets.evidence, caPem()) : null,
      };
    },

    /**
     * Creates the output datasets' records unless they exist (a retry finds them): the job's workflow is their only
     * creator, as an ingestion is of its dataset's.
     */
    async recordPreprocessOutputsActivity(raw: RecordPreprocessOutputsInput): Promise<{ created: string[] }> {
      const input = parseInput(RecordPreprocessOutputsInputSchema, raw, 'recordPreprocessOutputsActivity');
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      const created: string[] = [];
      const ids = [...new Set(input.document.outputs.map((o) => o.datasetId))];
      for (const datasetId of ids) {
        if (await readDatasetRecord(s3, jurisdiction.buckets.catalog, datasetId)) continue;
        const from = input.document.outputs.find((o) => o.datasetId === datasetId)!.fromDatasetId;
        const source = await readDatasetRecord(s3, jurisdiction.buckets.catalog, from);
        if (!source) throw nonRetryable(ErrorType.DatasetNotFound, `dataset ${from} is no longer in the catalog`);
        await writeDatasetRecord(
          s3,
          jurisdiction.buckets.catalog,
          outputRecord(jurisdiction, source, input.document, input.documentRef, datasetId),
        );
        created.push(datasetId);
      }
      // Into the subject index (outputs with a subject column), so discovery finds them without reading them again.
      await withScratchDb(scratchDir, 'index', (conn, dir) => indexDatasets({ s3, jurisdiction }, conn, dir, ids));
      return { created };
    },

    /** A job's run documentation, as written beside its outputs. */
    async readRunDocumentActivity(raw: { jurisdiction: string; jobId: string }): Promise<RunDocument> {
      assertOwnJurisdiction(jurisdiction, raw.jurisdiction);
      const document = await readRunDocument(s3, jurisdiction.buckets.curated, raw.jobId);
      if (!document) {
        throw nonRetryable(
          ErrorType.DatasetNotFound,
          `no run documentation for job ${raw.jobId} in ${jurisdiction.id} (${jurisdiction.buckets.curated}/${runDocumentKey(raw.jobId)})`,
        );
      }
      return document;
    },
  };
}
