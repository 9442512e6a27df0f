import type { S3Client } from '@aws-sdk/client-s3';
import type { Jurisdiction } from '../schemas/jurisdiction';
import { parseInput } from '../contracts/parse';
import { LookUpTokenInputSchema, type LookUpTokenInput, type ReidentifyResult } from '../schemas/vault';
import type { KeyStore } from '../lib/crypto/keystore';
import { lookUpToken } from '../lib/crypto/vault';
import { sealTo } from '../lib/crypto/sealed-box';

export function createVaultActivities({
  s3,
  keys,
  jurisdiction,
}: {
  s3: S3Client;
  keys: KeyStore;
  jurisdiction: Jurisdiction;
}) {
  return {
    /** Reads only: finds and unseals the token's vault entry. */
    async reidentifyActivity(raw: LookUpTokenInput): Promise<ReidentifyResult> {
      const input = parseInput(LookUpTokenInputSchema, raw, 'reidentifyActivity');
      const key = await keys.vaultKey(jurisdiction.id, input.studyId);
      const identifier = await lookUpToken(s3, jurisdiction.buckets.catalog, input.studyId, key, input.token);
      // Sealed to the requester here, in the worker: the identifier never sits in a history in a form ops can decode.
      return {
        found: identifier !== undefined,
        identifier: identifier === undefined ? null : sealTo(input.recipientCertificate, Buffer.from(identifier)),
      };
    },
  };
}
