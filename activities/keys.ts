import type { Jurisdiction } from '../schemas/jurisdiction';
import {
  RotateStudyKeyInputSchema,
  StudyKeyRefSchema,
  type RotateStudyKeyInput,
  type RotateStudyKeyResult,
  type StudyKeyRef,
} from '../schemas/keys';
import { parseInput } from '../contracts/parse';
import { ErrorType, nonRetryable } from '../contracts';
import { DestroyStudyKeyParamsSchema, type DestroyStudyKeyParams, type KeyInfo } from '../schemas/keys';
import { KeyStoreError, type KeyStore } from '../lib/crypto/keystore';
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

    /** The study's key versions and their states: reads only. */
    async studyKeyVersionsActivity(raw: StudyKeyRef): Promise<KeyInfo[]> {
      const input = parseInput(StudyKeyRefSchema, raw, 'studyKeyVersionsActivity');
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      return keys.studyKeyVersions(jurisdiction.id, input.studyId);
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

    /**
     * Destroys a retired version of a study's key (cryptographic erase: tokens made with it can no longer be computed,
     * so no look-up can reach the data keyed with it), then verifies that the key store reports it destroyed and
     * refuses to load it. The current version is refused: rotate first. Retry-safe: destroying what is destroyed is
     * verified again and reported as is.
     */
    async destroyStudyKeyActivity(raw: DestroyStudyKeyParams): Promise<{
      keyId: string;
      versions: KeyInfo[];
      verification: string[];
      verified: boolean;
    }> {
      const input = parseInput(DestroyStudyKeyParamsSchema, raw, 'destroyStudyKeyActivity');
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      const before = await keys.studyKeyVersions(jurisdiction.id, input.studyId);
      const target = before.find((k) => k.version === input.version);
      if (!target) {
        throw nonRetryable(ErrorType.KeyUnavailable, `study ${input.studyId} has no key version ${input.version}`);
      }
      if (target.state === 'active') {
        throw nonRetryable(
          ErrorType.KeyInUse,
          `key ${target.id} is the current key of study ${input.studyId}: rotate it first (steward keys rotate), then destroy the retired version`,
        );
      }
      await keys.destroyStudyKey(jurisdiction.id, input.studyId, input.version);
      const versions = await keys.studyKeyVersions(jurisdiction.id, input.studyId);
      const reported = versions.find((k) => k.version === input.version)?.state;
      let refused = false;
      try {
        await keys.studyKeyVersion(jurisdiction.id, input.studyId, input.version);
      } catch (error) {
        refused = error instanceof KeyStoreError;
      }
      const live = (await keys.liveStudyKeys(jurisdiction.id, input.studyId)).map((k) => k.version);
      return {
        keyId: target.id,
        versions,
        verified: reported === 'destroyed' && refused && !live.includes(input.version),
        verification: [
          `key store reports ${target.id} as ${reported}`,
          `loading ${target.id} ${refused ? 'is refused' : 'still succeeds'}`,
          `live versions of study ${input.studyId}: ${live.map((v) => `v${v}`).join(', ') || 'none'}`,
        ],
      };
    },
  };
}
