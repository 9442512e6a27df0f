import type { S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import pkg from '../package.json';
import {
  CertificateDraftSchema,
  type CertificateDraft,
  type DeletionCertificate,
  type IssuedCertificate,
} from '../schemas/certificate';
import type { Jurisdiction } from '../schemas/jurisdiction';
import { parseInput } from '../schemas/parse';
import { evidenceRetainUntil, putEvidence } from '../lib/audit/store';
import { certificateBytes, certificateKeys } from '../lib/evidence/certificate';
import type { SignerMaterial } from '../lib/pki/authority';
import { signDetached } from '../lib/pki/cms';
import { certificateInfo } from '../lib/pki/x509';
import { getObjectOrUndefined } from '../lib/storage/objects';
import { assertOwnJurisdiction } from './guards';

/** The versions of what did the sanitizing, as a certificate lists them. */
export function toolVersions(): Record<string, string> {
  return {
    steward: pkg.version,
    node: process.version,
    'temporal-sdk': pkg.dependencies['@temporalio/worker'],
    'aws-sdk-s3': pkg.dependencies['@aws-sdk/client-s3'],
    'node-forge': pkg.dependencies['node-forge'],
  };
}

export interface EvidenceActivityDeps {
  s3: S3Client;
  jurisdiction: Jurisdiction;
  signer: () => Promise<SignerMaterial>;
  caPem: () => string;
}

/** Signed evidence of the jurisdiction: deletion certificates in its evidence bucket. */
export function createEvidenceActivities({ s3, jurisdiction, signer, caPem }: EvidenceActivityDeps) {
  const bucket = jurisdiction.buckets.evidence;
  return {
    /**
     * Completes a certificate (tools, issuer, time), signs it as detached CMS with the evidence signer and stores both
     * write-once under Object Lock. Retry-safe: a certificate already stored under its id is returned as it is.
     */
    async issueDeletionCertificateActivity(raw: CertificateDraft): Promise<IssuedCertificate> {
      const draft = parseInput(CertificateDraftSchema, raw, 'issueDeletionCertificateActivity');
      assertOwnJurisdiction(jurisdiction, draft.jurisdiction);
      const keys = certificateKeys(draft.certificateId);
      const stored = await getObjectOrUndefined(s3, bucket, keys.json);
      if (stored && (await getObjectOrUndefined(s3, bucket, keys.p7s))) {
        return {
          certificateId: draft.certificateId,
          bucket,
          jsonKey: keys.json,
          signatureKey: keys.p7s,
          sha256: createHash('sha256').update(stored).digest('hex'),
        };
      }
      const material = await signer();
      const info = certificateInfo(material.certificatePem);
      const certificate: DeletionCertificate = {
        format: 'steward-deletion-certificate/1',
        ...draft,
        tools: toolVersions(),
        issuedAt: new Date().toISOString(),
        issuer: { name: info.name, certificateSerial: info.serial, certificateFingerprint: info.fingerprint },
      };
      const json = certificateBytes(certificate);
      const p7s = signDetached(json, material, [caPem()]);
      const retainUntil = evidenceRetainUntil(jurisdiction, 'deletion-certificate', certificate.issuedAt);
      // The signature first: a certificate file is only ever found with its signature beside it.
      await putEvidence(s3, bucket, keys.p7s, p7s, 'application/pkcs7-signature', retainUntil);
      await putEvidence(s3, bucket, keys.json, json, 'application/json', retainUntil);
      return {
        certificateId: draft.certificateId,
        bucket,
        jsonKey: keys.json,
        signatureKey: keys.p7s,
        sha256: createHash('sha256').update(json).digest('hex'),
      };
    },
  };
}
