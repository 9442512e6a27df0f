import type { S3Client } from '@aws-sdk/client-s3';
import { z } from 'zod';
import { ErasedVersionSchema, ErasureResultSchema, type ErasureResult } from '../../schemas/erasure';
import { getJson, putJson } from '../storage/json';
import { erasureJournalKey, erasureResultKey } from '../storage/layout';

/** What one unit lost, and how its absence was checked. */
export const UnitOutcomeSchema = z.object({
  unitId: z.string(),
  versions: z.array(ErasedVersionSchema),
  verified: z.boolean(),
  verification: z.array(z.string()),
});
export type UnitOutcome = z.infer<typeof UnitOutcomeSchema>;

/**
 * An erasure operation's journal, in its jurisdiction's catalog bucket: written before anything is deleted (every
 * version, with its SHA-256, so a retry after a crash deletes what is left and still certifies everything), and
 * completed with the outcomes once the absence is verified (a retry finding them returns them as they are). Its
 * certificates are built from it.
 */
export const ErasureJournalSchema = z.object({
  format: z.literal('steward-erasure-journal/1'),
  operationId: z.string(),
  startedAt: z.iso.datetime(),
  units: z.array(z.object({ unitId: z.string(), versions: z.array(ErasedVersionSchema) })),
  done: z
    .object({
      completedAt: z.iso.datetime(),
      outcomes: z.array(UnitOutcomeSchema),
      failed: z.array(z.object({ unitId: z.string(), reason: z.string() })),
    })
    .optional(),
});
export type ErasureJournal = z.infer<typeof ErasureJournalSchema>;

/** `key`: where the journal is kept; a DR site keeps its own apart from the replica of the primary's. */
export function readJournal(
  s3: S3Client,
  bucket: string,
  operationId: string,
  key = erasureJournalKey(operationId),
): Promise<ErasureJournal | undefined> {
  return getJson(s3, bucket, key, ErasureJournalSchema);
}

export async function writeJournal(
  s3: S3Client,
  bucket: string,
  journal: ErasureJournal,
  key = erasureJournalKey(journal.operationId),
): Promise<void> {
  await putJson(s3, bucket, key, ErasureJournalSchema, journal);
}

/**
 * What an operation certified, once it has: a run of the same operation that finds it (a reset, a parent that ran it
 * again) returns it instead of erasing and certifying a second time.
 */
export function readResult(s3: S3Client, bucket: string, operationId: string): Promise<ErasureResult | undefined> {
  return getJson(s3, bucket, erasureResultKey(operationId), ErasureResultSchema);
}

export async function writeResult(s3: S3Client, bucket: string, result: ErasureResult): Promise<void> {
  await putJson(s3, bucket, erasureResultKey(result.operationId), ErasureResultSchema, result);
}
