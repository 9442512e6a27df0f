import { z } from 'zod';
import { Sha256HexSchema, StudyIdSchema } from './common';
import { ESignatureSchema } from './request';

/** A source system (an EDC, a lab) whose certificate a study trusts to sign its packages' manifests. */
export const RegisteredSourceSchema = z.object({
  name: z.string().min(1).max(120),
  /** SHA-256 of the certificate's DER, lowercase hex: the certificate is pinned, not merely its issuer. */
  fingerprint: Sha256HexSchema,
  certificatePem: z.string().startsWith('-----BEGIN CERTIFICATE-----'),
  registeredAt: z.iso.datetime(),
  registeredBy: ESignatureSchema,
});
export type RegisteredSource = z.infer<typeof RegisteredSourceSchema>;

/** A study's registered sources, in its jurisdiction's catalog (`sources/<study>.json`). */
export const SourceRegistrySchema = z.object({
  format: z.literal('steward-sources/1'),
  jurisdiction: z.string(),
  studyId: StudyIdSchema,
  /** Packages of the study must be signed by one of the sources; unsigned ones are rejected. */
  required: z.boolean(),
  sources: z.array(RegisteredSourceSchema),
});
export type SourceRegistry = z.infer<typeof SourceRegistrySchema>;

/** What a `sources.register` request asks for. */
export const RegisterSourceParamsSchema = z.object({
  studyId: StudyIdSchema,
  name: z.string().min(1).max(120),
  certificatePem: z.string().startsWith('-----BEGIN CERTIFICATE-----').max(20_000),
  /** From now on, the study's packages must be signed by a registered source. */
  required: z.boolean().default(false),
});
export type RegisterSourceParams = z.infer<typeof RegisterSourceParamsSchema>;

/** Who signed a package's manifest, as verified at ingestion: kept in the dataset record and its lineage. */
export const SourceSignatureSchema = z.object({
  /** The registered source's name, or the certificate's subject when the signer is not registered for the study. */
  source: z.string(),
  /** Whether the signer is one of the study's registered sources (where signatures are required, it must be). */
  registered: z.boolean(),
  fingerprint: Sha256HexSchema,
  subject: z.string(),
  serial: z.string(),
  /** The signing time the signature states (CMS signingTime), when it states one. */
  signedAt: z.iso.datetime().nullable(),
  /** The package file the signature covers. */
  signedFile: z.string(),
});
export type SourceSignature = z.infer<typeof SourceSignatureSchema>;
