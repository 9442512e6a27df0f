import { z } from 'zod';
import { PrincipalSchema, Sha256HexSchema, StudyIdSchema } from './common';
import { DatasetRecordSchema } from './dataset';
import { JurisdictionIdSchema } from './jurisdiction';
import { PackageMetadataSchema } from './package';

export const ObjectLocationSchema = z.object({ bucket: z.string(), prefix: z.string() });

export const UnreadableFileSchema = z.object({ path: z.string(), reason: z.string() });
export type UnreadableFile = z.infer<typeof UnreadableFileSchema>;

export const IngestPackageInputSchema = z.object({
  packageId: z.string().regex(/^[0-9a-f]{24}$/),
  manifestSha256: Sha256HexSchema,
  layout: z.enum(['bagit', 'json']),
  jurisdiction: JurisdictionIdSchema,
  landing: ObjectLocationSchema,
  metadata: PackageMetadataSchema,
  /** Files the submitter could not read (symbolic links, special files, permission errors). */
  unreadable: z.array(UnreadableFileSchema),
  submittedBy: PrincipalSchema,
});
export type IngestPackageInput = z.infer<typeof IngestPackageInputSchema>;

export const IngestPackageResultSchema = z.object({
  datasetId: z.string(),
  outcome: z.enum(['curated', 'already-curated']),
  record: DatasetRecordSchema,
});
export type IngestPackageResult = z.infer<typeof IngestPackageResultSchema>;

export const IngestPhaseSchema = z.enum(['verifying', 'curating', 'recording', 'quarantining', 'done', 'rejected']);
export type IngestPhase = z.infer<typeof IngestPhaseSchema>;

export interface IngestProgress {
  phase: IngestPhase;
  datasetId: string;
}

export const ImportConsentInputSchema = z.object({
  jurisdiction: JurisdictionIdSchema,
  studyId: StudyIdSchema,
  source: z.object({ bucket: z.string(), key: z.string(), sha256: Sha256HexSchema }),
  fileName: z.string(),
  submittedBy: PrincipalSchema,
});
export type ImportConsentInput = z.infer<typeof ImportConsentInputSchema>;

export interface ImportConsentResult {
  jurisdiction: string;
  studyId: string;
  rows: number;
  given: number;
  withdrawn: number;
  subjectsInRegistry: number;
  /** Subjects whose new record contradicts the stored one of the same date (the later import wins). */
  conflicts: number;
}

/** One reason a package was rejected. Never carries a data value: only where and which rule. */
export const PackageProblemSchema = z.object({
  file: z.string(),
  row: z.number().int().positive().optional(),
  field: z.string().optional(),
  rule: z.string(),
});
export type PackageProblem = z.infer<typeof PackageProblemSchema>;
