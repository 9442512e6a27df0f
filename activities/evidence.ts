import type { S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import pkg from '../package.json';
import {
  IssueBatchCertificatesInputSchema,
  type IssueBatchCertificatesInput,
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
import { outcomesKey, readOutcomes } from '../lib/retention/deletion';
import { inLanes } from '../lib/runtime/lanes';
import { Context } from '@temporalio/activity';
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
      return issue(draft, true);
    },

    /**
     * Issues the certificates of one deleted batch of a retention sweep, eight at a time: each lists every version its
     * unit lost (from the batch's deletion outcomes), the verification and its result. A first attempt writes without
     * looking; a retry returns certificates already stored as they are.
     */
    async issueBatchCertificatesActivity(raw: IssueBatchCertificatesInput): Promise<IssuedCertificate[]> {
      const input = parseInput(IssueBatchCertificatesInputSchema, raw, 'issueBatchCertificatesActivity');
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      const outcomes = await readOutcomes(s3, jurisdiction.buckets.catalog, outcomesKey(input.sweepId, input.batch));
      if (!outcomes) throw new Error(`batch ${input.batch} of sweep ${input.sweepId} has no deletion outcomes yet`);
      const byUnit = new Map(outcomes.outcomes.map((o) => [o.id, o]));
      const endpoint = await endpointOf(s3);
      const firstAttempt = Context.current().info.attempt === 1;
      const issued = new Array<IssuedCertificate>(input.certificates.length);
      let done = 0;
      await inLanes([...input.certificates.keys()], 8, async (i) => {
        const c = input.certificates[i]!;
        const outcome = byUnit.get(c.unitId);
        if (!outcome) throw new Error(`batch ${input.batch} holds no deletion of ${c.unitId}`);
        const extra = input.extra[c.unitId];
        const objects = [
          ...outcome.versions.map((v) => ({
            endpoint,
            bucket: v.bucket,
            key: v.key,
            versionId: v.versionId,
            bytes: v.bytes,
            sha256: v.sha256,
            ...(c.datasetId ? { datasetId: c.datasetId } : {}),
          })),
          ...(extra?.versions ?? []).map((v) => ({
            endpoint,
            ...v,
            ...(c.datasetId ? { datasetId: c.datasetId } : {}),
          })),
        ];
        const verified = outcome.verified && (extra?.verified ?? true);
        issued[i] = await issue(
          {
            certificateId: c.certificateId,
            jurisdiction: jurisdiction.id,
            reason: c.reason,
            requestedBy: input.requestedBy,
            approvedBy: input.approvedBy,
            sanitized: { objects, keys: [] },
            method: {
              category: 'Clear',
              techniques: [
                'S3 DeleteObjects of every object version and delete marker (versioned buckets), GOVERNANCE retention overridden under the bucket policy granted to the retention sweep',
              ],
              keyIdsDestroyed: [],
            },
            verification: {
              performed: ['ListObjectVersions under every deleted prefix', 'HEAD of the catalog record'],
              result: verified ? 'passed' : 'failed',
              details: [...outcome.verification, ...(extra ? [extra.verification] : [])],
            },
            startedAt: outcome.startedAt,
            completedAt: outcome.completedAt,
            workflow: input.workflow,
            auditChain: c.auditChain,
          },
          !firstAttempt,
        );
        Context.current().heartbeat({ issued: ++done, of: input.certificates.length });
      });
      return issued;
    },
  };

  /**
   * Completes a certificate (tools, issuer, time), signs it as detached CMS with the evidence signer and stores both
   * write-once under Object Lock. With `lookFirst`, a certificate already stored under its id is returned as it is.
   */
  async function issue(draft: CertificateDraft, lookFirst: boolean): Promise<IssuedCertificate> {
    const keys = certificateKeys(draft.certificateId);
    if (lookFirst) {
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
  }
}

/** The S3 endpoint a certificate names for the buckets it lists. */
async function endpointOf(s3: S3Client): Promise<string> {
  const endpoint = await s3.config.endpoint?.();
  if (!endpoint) return `https://s3.${await s3.config.region()}.amazonaws.com`;
  return `${endpoint.protocol}//${endpoint.hostname}${endpoint.port ? `:${endpoint.port}` : ''}`;
}
