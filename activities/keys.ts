import type { Jurisdiction } from '../schemas/jurisdiction';
import type { KeyInfo, KeyStore } from '../lib/keystore';

export interface RotateStudyKeyInput {
  jurisdiction: string;
  studyId: string;
}

export interface RotateStudyKeyResult {
  jurisdiction: string;
  studyId: string;
  previousVersion: number;
  currentVersion: number;
  versions: KeyInfo[];
}

/** Key management inside the jurisdiction's worker: key material never leaves it, results carry versions only. */
export function createKeyActivities({ keys, jurisdiction }: { keys: KeyStore; jurisdiction: Jurisdiction }) {
  return {
    /** Reads only. */
    async currentStudyKeyVersionActivity(input: RotateStudyKeyInput): Promise<number> {
      return (await keys.studyKey(jurisdiction.id, input.studyId)).version;
    },

    /** Retry-safe: rotating from a version that is no longer current changes nothing. */
    async rotateStudyKeyActivity(input: RotateStudyKeyInput & { fromVersion: number }): Promise<RotateStudyKeyResult> {
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
