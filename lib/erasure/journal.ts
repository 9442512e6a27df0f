import type { S3Client } from '@aws-sdk/client-s3';
import { z } from 'zod';
import { ErasedVersionSchema, ErasureResultSchema } from '../../schemas/erasure';
import { getJson, putJson } from '../storage/json';
import { erasureJournalKey } from '../storage/layout';

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
 * completed with the outcomes once the absence is verified (a retry finding them returns them as they are), and with
 * the operation's result once it is certified. Its certificates are built from it.
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
  /**
   * What the operation certified, once it has: a run of the same operation that finds it (a reset, a parent that ran
   * it again) returns it instead of erasing and certifying a second time.
   */
  result: ErasureResultSchema.optional(),
});
export type ErasureJournal = z.infer<typeof ErasureJournalSchema>;

export function readJournal(s3: S3Client, bucket: string, operationId: string): Promise<ErasureJournal | undefined> {
  return getJson(s3, bucket, erasureJournalKey(operationId), ErasureJournalSchema);
}

export async function writeJournal(s3: S3Client, bucket: string, journal: ErasureJournal): Promise<void> {
  await putJson(s3, bucket, erasureJournalKey(journal.operationId), ErasureJournalSchema, journal);
}
