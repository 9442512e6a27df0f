import type { Jurisdiction } from '../schemas/jurisdiction';
import {
  RotateStudyKeyInputSchema,
  StudyKeyRefSchema,
  type RotateStudyKeyInput,
  type RotateStudyKeyResult,
  type StudyKeyRef,
} from '../schemas/keys';
import { parseInput } from '../schemas/parse';
import type { KeyStore } from '../lib/crypto/keystore';
import { assertOwnJurisdiction } from './guards';

/** Key management inside the jurisdiction's worker: key material never leaves it, results carry versions only. */
export function createKeyActivities({ keys, jurisdiction }: { keys: KeyStore; jurisdiction: Jurisdiction }) {
  return {
    /** Reads only (creates version 1 on a study's first use, once: key files are created exclusively). */
    async currentStudyKeyVersionActivity(raw: StudyKeyRef): Promise<number> {
      const input = parseInput(StudyKeyRefSchema, raw, 'currentStudyKeyVersionActivity');
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      return (await keys.studyKey(jurisdiction.id, input.studyId)).version;
    },

    /** Retry-safe: rotating from a version that is no longer current changes nothing. */
    async rotateStudyKeyActivity(raw: RotateStudyKeyInput): Promise<RotateStudyKeyResult> {
      const input = parseInput(RotateStudyKeyInputSchema, raw, 'rotateStudyKeyActivity');
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      const next = await keys.rotateStudyKey(jurisdiction.id, input.studyId, input.fromVersion);
      return {
        jurisdiction: jurisdiction.id,
        studyId: input.studyId,
        previousVersion: input.fromVersion,
        currentVersion: next.version,
        versions: await keys.studyKeyVersions(jurisdiction.id, input.studyId),
      };
    },
  };
}
