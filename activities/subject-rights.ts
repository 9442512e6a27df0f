import { createHmac, randomBytes } from 'node:crypto';
import type { Client } from '@temporalio/client';
import type { KeyStore } from '../lib/crypto/keystore';
import { canonicalizeIdentifier, tokenize } from '../lib/crypto/pseudonymize';
import { parseInput } from '../contracts/parse';
import type { Jurisdiction } from '../schemas/jurisdiction';
import {
  OpenSubjectRequestInputSchema,
  SubjectTokensInputSchema,
  type OpenSubjectRequestInput,
  type SubjectTokens,
  type SubjectTokensInput,
} from '../schemas/subject-request';

/** The key-store id of the jurisdiction's subject-digest key. */
export function subjectDigestKeyId(jurisdiction: string): string {
  return `subjects/${jurisdiction}`;
}

/** A subject's keyed digest in a jurisdiction: links requests for the same subject without keeping the identifier. */
export function subjectDigest(key: Buffer, subjectId: string): string {
  return createHmac('sha256', key)
    .update(`steward-subject-digest/1\n${canonicalizeIdentifier(subjectId)}`)
    .digest('hex');
}

/** What subject requests need from the keys: a keyed digest of the subject, and the subject's tokens. */
export function createSubjectRightsActivities({
  keys,
  jurisdiction,
  temporal,
}: {
  keys: KeyStore;
  jurisdiction: Jurisdiction;
  /** A client of the worker's Temporal service, opened on first use. */
  temporal: () => Promise<Client>;
}) {
  return {
    /**
     * Whether the workflow of an open request still runs: a request whose workflow was terminated or reset away (it
     * never closed its marker) answers nobody, so a new request for the subject takes its place.
     */
    async requestRunningActivity(raw: { workflowId: string }): Promise<{ running: boolean }> {
      const client = await temporal();
      try {
        const d = await client.workflow.getHandle(String(raw.workflowId)).describe();
        return { running: d.status.name === 'RUNNING' };
      } catch (error) {
        if ((error as Error).name === 'WorkflowNotFoundError') return { running: false };
        throw error;
      }
    },

    /** The subject's keyed digest (HMAC under the jurisdiction's subject-digest key, created on first use). */
    async subjectDigestActivity(raw: OpenSubjectRequestInput): Promise<{ subjectDigest: string }> {
      const input = parseInput(OpenSubjectRequestInputSchema, raw, 'subjectDigestActivity');
      const key = await keys.storeSecret(subjectDigestKeyId(jurisdiction.id), randomBytes(32));
      return { subjectDigest: subjectDigest(key, input.subjectId) };
    },

    /**
     * The subject's token under every live key version of every study of the jurisdiction (or the one named), and the
     * destroyed versions, whose data is crypto-erased. Creates no key: a study without keys holds no data.
     */
    async subjectTokensActivity(raw: SubjectTokensInput): Promise<SubjectTokens> {
      const input = parseInput(SubjectTokensInputSchema, raw, 'subjectTokensActivity');
      const studies = (await keys.studies(jurisdiction.id)).filter((s) => !input.studyId || s === input.studyId);
      const out: SubjectTokens['studies'] = [];
      for (const studyId of studies) {
        const versions = await keys.studyKeyVersions(jurisdiction.id, studyId);
        const tokens: SubjectTokens['studies'][number]['tokens'] = [];
        for (const v of versions.filter((k) => k.state !== 'destroyed')) {
          const key = await keys.studyKeyVersion(jurisdiction.id, studyId, v.version);
          tokens.push({ version: v.version, token: tokenize(key.material, key.version, input.subjectId) });
        }
        const cryptoErased = versions.filter((k) => k.state === 'destroyed').map((k) => k.version);
        if (tokens.length > 0 || cryptoErased.length > 0) out.push({ studyId, tokens, cryptoErased });
      }
      return { studies: out };
    },
  };
}
