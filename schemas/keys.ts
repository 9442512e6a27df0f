import { z } from 'zod';
import { PrincipalSchema, StudyIdSchema } from './common';
import { KnownJurisdictionSchema } from '../jurisdictions';

export const KeyInfoSchema = z.object({
  id: z.string(),
  version: z.number().int().positive(),
  state: z.enum(['active', 'retired', 'destroyed']),
  createdAt: z.string(),
});
export type KeyInfo = z.infer<typeof KeyInfoSchema>;

export const StudyKeyRefSchema = z.object({ jurisdiction: KnownJurisdictionSchema, studyId: StudyIdSchema });
export type StudyKeyRef = z.infer<typeof StudyKeyRefSchema>;

export const RotateStudyKeyWorkflowInputSchema = StudyKeyRefSchema.extend({ requestedBy: PrincipalSchema });
export type RotateStudyKeyWorkflowInput = z.infer<typeof RotateStudyKeyWorkflowInputSchema>;

export const RotateStudyKeyInputSchema = StudyKeyRefSchema.extend({ fromVersion: z.number().int().positive() });
export type RotateStudyKeyInput = z.infer<typeof RotateStudyKeyInputSchema>;

export const RotateStudyKeyResultSchema = z.object({
  jurisdiction: z.string(),
  studyId: z.string(),
  previousVersion: z.number().int().positive(),
  currentVersion: z.number().int().positive(),
  versions: z.array(KeyInfoSchema),
});
export type RotateStudyKeyResult = z.infer<typeof RotateStudyKeyResultSchema>;

/** What a `keys.destroy` request asks for: one retired version of a study's key. */
export const DestroyStudyKeyParamsSchema = StudyKeyRefSchema.extend({ version: z.number().int().positive() });
export type DestroyStudyKeyParams = z.infer<typeof DestroyStudyKeyParamsSchema>;

export const DestroyStudyKeyResultSchema = z.object({
  jurisdiction: z.string(),
  studyId: z.string(),
  version: z.number().int().positive(),
  keyId: z.string(),
  certificateId: z.string(),
  versions: z.array(KeyInfoSchema),
});
export type DestroyStudyKeyResult = z.infer<typeof DestroyStudyKeyResultSchema>;
