import { z } from 'zod';
import { PrincipalSchema, StudyIdSchema } from './common';
import { DatasetOutputSchema } from './dataset';
import { DatasetIdSchema } from './ingest';
import { KnownJurisdictionSchema } from '../jurisdictions';

/**
 * One shard of a study's re-identification vault: token → original identifier sealed with AES-256-GCM under the
 * study's vault key (the token is the additional data). One shard per dataset.
 */
export const VaultShardSchema = z.object({
  format: z.literal('steward-vault/1'),
  jurisdiction: z.string(),
  studyId: z.string(),
  datasetId: z.string(),
  keyId: z.string(),
  entries: z.record(z.string(), z.string()),
});
export type VaultShard = z.infer<typeof VaultShardSchema>;

export const ReidentifyInputSchema = z.object({
  jurisdiction: KnownJurisdictionSchema,
  studyId: StudyIdSchema,
  token: z.string().regex(/^v\d+\.[A-Za-z0-9_-]{43}$/, 'must be a token such as v1.<43 characters>'),
  reason: z.string().min(1),
  requestedBy: PrincipalSchema,
});
export type ReidentifyInput = z.infer<typeof ReidentifyInputSchema>;

/** What a `reidentify` request asks for. */
export const ReidentifyParamsSchema = ReidentifyInputSchema.omit({ requestedBy: true });
export type ReidentifyParams = z.infer<typeof ReidentifyParamsSchema>;

/** A result encrypted to one person's certificate (see `sealTo`): the workflow history holds only this. */
export const SealedBoxSchema = z.object({
  format: z.literal('steward-sealed/1'),
  /** SHA-256 fingerprint of the certificate it is sealed to, lowercase hex. */
  recipient: z.string().regex(/^[0-9a-f]{64}$/),
  key: z.string(),
  iv: z.string(),
  tag: z.string(),
  ciphertext: z.string(),
});
export type SealedBox = z.infer<typeof SealedBoxSchema>;

/** What re-identification returns: whether the vault had the token, and the identifier sealed to the requester. */
export const ReidentifyResultSchema = z.object({ found: z.boolean(), identifier: SealedBoxSchema.nullable() });
export type ReidentifyResult = z.infer<typeof ReidentifyResultSchema>;

export const LookUpTokenInputSchema = ReidentifyInputSchema.pick({ studyId: true, token: true }).extend({
  /** The requester's certificate (from the signed request): the identifier is sealed to it. */
  recipientCertificate: z.string().startsWith('-----BEGIN CERTIFICATE-----'),
});
export type LookUpTokenInput = z.infer<typeof LookUpTokenInputSchema>;

export const RePseudonymizeDatasetInputSchema = z.object({ datasetId: DatasetIdSchema, requestedBy: PrincipalSchema });
export type RePseudonymizeDatasetInput = z.infer<typeof RePseudonymizeDatasetInputSchema>;

/** What a `datasets.repseudonymize` request asks for. */
export const RePseudonymizeParamsSchema = RePseudonymizeDatasetInputSchema.omit({ requestedBy: true });
export type RePseudonymizeParams = z.infer<typeof RePseudonymizeParamsSchema>;

export const RePseudonymizeActivityInputSchema = z.object({ datasetId: DatasetIdSchema, at: z.iso.datetime() });
export type RePseudonymizeActivityInput = z.infer<typeof RePseudonymizeActivityInputSchema>;

export const RePseudonymizeResultSchema = z.object({
  datasetId: z.string(),
  fromVersions: z.array(z.number().int().positive()),
  toVersion: z.number().int().positive(),
  tablesMigrated: z.number().int().nonnegative(),
  migrated: z.boolean(),
  /** Restricted or erased subjects' tokens carried to the new key version, so processing still leaves them out. */
  tokensCarried: z.number().int().nonnegative().default(0),
});
export type RePseudonymizeResult = z.infer<typeof RePseudonymizeResultSchema>;

export const RePseudonymizeActivityResultSchema = RePseudonymizeResultSchema.extend({
  /** The dataset's outputs as stored after the migration, for the dataset record. */
  outputs: z.array(DatasetOutputSchema),
  /** Object versions deleted (the versions under the old key). */
  deletedVersions: z.array(z.object({ bucket: z.string(), key: z.string(), versionId: z.string() })).default([]),
});
export type RePseudonymizeActivityResult = z.infer<typeof RePseudonymizeActivityResultSchema>;
