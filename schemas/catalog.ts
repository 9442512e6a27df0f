import { z } from 'zod';
import { Sha256HexSchema, StudyIdSchema } from './common';
import { DatasetOutputSchema } from './dataset';
import { DatasetIdSchema } from './ingest';
import { KnownJurisdictionSchema } from '../jurisdictions';

/**
 * A change to a shared catalog object. Each object has one writer, the catalog writer workflow of its key, which
 * applies changes one at a time; every change is idempotent, so applying one twice leaves the object as once.
 */
export const CatalogMutationSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('dataset.outputs-replaced'),
    datasetId: DatasetIdSchema,
    outputs: z.array(DatasetOutputSchema),
    keyVersions: z.array(z.number().int().positive()),
    at: z.iso.datetime(),
  }),
  z.object({
    kind: z.literal('vault.entries-destroyed'),
    studyId: StudyIdSchema,
    tokens: z.array(z.string()).min(1),
  }),
  z.object({
    /** A signed request is used once: by the first workflow that claims its id. */
    kind: z.literal('request.claimed'),
    requestId: z.string(),
    workflowId: z.string(),
    bodySha256: Sha256HexSchema,
  }),
]);
export type CatalogMutation = z.infer<typeof CatalogMutationSchema>;

export const CatalogMutationResultSchema = z.object({
  /** Whether the object changed (false: the change was already there). */
  changed: z.boolean(),
  /** How many items the change touched: vault entries destroyed, outputs replaced. */
  count: z.number().int().nonnegative(),
});
export type CatalogMutationResult = z.infer<typeof CatalogMutationResultSchema>;

export const CatalogWriterInputSchema = z.object({
  jurisdiction: KnownJurisdictionSchema,
  /** What the writer owns, e.g. `dataset/ds-eu-…` or `vault/ST-1`. */
  target: z.string().regex(/^(dataset|vault|requests)\/[A-Za-z0-9._-]{1,80}$/),
});
export type CatalogWriterInput = z.infer<typeof CatalogWriterInputSchema>;

export const CatalogMutationRequestSchema = z.object({
  requestId: z.string().min(1),
  /** Workflow id to signal the outcome to. */
  replyTo: z.string().min(1),
  mutation: CatalogMutationSchema,
});
export type CatalogMutationRequest = z.infer<typeof CatalogMutationRequestSchema>;

export const CatalogMutationReplySchema = z.object({
  requestId: z.string(),
  result: CatalogMutationResultSchema.optional(),
  /** Set when the change failed for good; the caller fails with it. */
  failure: z.object({ type: z.string(), message: z.string() }).optional(),
});
export type CatalogMutationReply = z.infer<typeof CatalogMutationReplySchema>;

/** The catalog object a mutation changes: the key of its single writer. */
export function mutationTarget(mutation: CatalogMutation): string {
  switch (mutation.kind) {
    case 'dataset.outputs-replaced':
      return `dataset/${mutation.datasetId}`;
    case 'vault.entries-destroyed':
      return `vault/${mutation.studyId}`;
    case 'request.claimed':
      return 'requests/all';
  }
}
