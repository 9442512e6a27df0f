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
import { parseInput } from '../contracts/parse';
import { evidenceRetainUntil, putEvidence } from '../lib/audit/store';
import {
  certificateBundleKey,
  CertificateBundleSchema,
  certificateBytes,
  certificateKeys,
  type CertificateBundle,
} from '../lib/evidence/certificate';
import { ErrorType, nonRetryable } from '../contracts';
import type { SignerMaterial } from '../lib/pki/authority';
import { signDetached } from '../lib/pki/cms';
import { certificateInfo } from '../lib/pki/x509';
import { getObjectOrUndefined } from '../lib/storage/objects';
import { outcomesKey, readOutcomes } from '../lib/retention/deletion';
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
      const bundleKey = certificateBundleKey(input.certificates[0]!.certificateId);
      if (!bundleKey || input.certificates.some((c) => certificateBundleKey(c.certificateId) !== bundleKey)) {
        throw nonRetryable(ErrorType.InvalidInput, 'the certificates of a batch must share one bundle id');
      }
      const bundled = (bundle: CertificateBundle): IssuedCertificate[] =>
        bundle.certificates.map((c) => ({
          certificateId: c.certificateId,
          bucket,
          jsonKey: bundleKey,
          signatureKey: bundleKey,
          sha256: createHash('sha256').update(Buffer.from(c.json, 'base64')).digest('hex'),
        }));
      // A retry finds the bundle an earlier attempt stored, and returns it as it is: never a second set of certificates.
      if (Context.current().info.attempt > 1) {
        const stored = await getObjectOrUndefined(s3, bucket, bundleKey);
        if (stored) return bundled(CertificateBundleSchema.parse(JSON.parse(stored.toString('utf8'))));
      }
      const outcomes = await readOutcomes(s3, jurisdiction.buckets.catalog, outcomesKey(input.sweepId, input.batch));
      if (!outcomes) throw new Error(`batch ${input.batch} of sweep ${input.sweepId} has no deletion outcomes yet`);
      const byUnit = new Map(outcomes.outcomes.map((o) => [o.id, o]));
      const endpoint = await endpointOf(s3);
      const material = await signer();
      const info = certificateInfo(material.certificatePem);
      const tools = toolVersions();
      const bundle: CertificateBundle = { format: 'steward-certificate-bundle/1', certificates: [] };
      let issuedAt = '';
      for (const c of input.certificates) {
        const outcome = byUnit.get(c.unitId);
        if (!outcome) throw new Error(`batch ${input.batch} holds no deletion of ${c.unitId}`);
        const extra = input.extra[c.unitId];
        const verified = outcome.verified && (extra?.verified ?? true);
        issuedAt = new Date().toISOString();
        const certificate: DeletionCertificate = {
          format: 'steward-deletion-certificate/1',
          certificateId: c.certificateId,
          jurisdiction: jurisdiction.id,
          reason: c.reason,
          requestedBy: input.requestedBy,
          approvedBy: input.approvedBy,
          sanitized: {
            objects: [...outcome.versions, ...(extra?.versions ?? [])].map((v) => ({
              endpoint,
              bucket: v.bucket,
              key: v.key,
              versionId: v.versionId,
              bytes: v.bytes,
              sha256: v.sha256,
              ...(c.datasetId ? { datasetId: c.datasetId } : {}),
            })),
            keys: [],
          },
          method: {
            category: 'Clear',
            techniques: [
              'S3 DeleteObjects of every object version and delete marker (versioned buckets), GOVERNANCE retention overridden under the bucket policy granted to the retention sweep',
            ],
            keyIdsDestroyed: [],
          },
          tools,
          verification: {
            performed: ['ListObjectVersions under every deleted prefix', 'HEAD of the catalog record'],
            result: verified ? 'passed' : 'failed',
            details: [...outcome.verification, ...(extra ? [extra.verification] : [])],
          },
          startedAt: outcome.startedAt,
          completedAt: outcome.completedAt,
          workflow: input.workflow,
          auditChain: c.auditChain,
          issuedAt,
          issuer: { name: info.name, certificateSerial: info.serial, certificateFingerprint: info.fingerprint },
        };
        const json = certificateBytes(certificate);
        const p7s = signDetached(json, material, [caPem()]);
        bundle.certificates.push({
          certificateId: c.certificateId,
          json: json.toString('base64'),
          p7s: p7s.toString('base64'),
        });
        if (bundle.certificates.length % 50 === 0) Context.current().heartbeat({ signed: bundle.certificates.length });
      }
      const retainUntil = evidenceRetainUntil(jurisdiction, 'deletion-certificate', issuedAt);
      await putEvidence(s3, bucket, bundleKey, Buffer.from(JSON.stringify(bundle)), 'application/json', retainUntil);
      return bundled(bundle);
    },
  };

  /**
   * Completes a certificate (tools, issuer, time), signs it as detached CMS with the evidence signer and stores both
   * write-once under Object Lock. With `lookFirst`, a certificate already stored under its id is returned as it is.
   */
  async function issue(draft: CertificateDraft, lookFirst: boolean): Promise<IssuedCertificate> {
    const keys = certificateKeys(draft.certificateId);
    const issued = (json: Buffer): IssuedCertificate => ({
      certificateId: draft.certificateId,
      bucket,
      jsonKey: keys.json,
      signatureKey: keys.p7s,
      sha256: createHash('sha256').update(json).digest('hex'),
    });
    if (lookFirst) {
      const stored = await getObjectOrUndefined(s3, bucket, keys.json);
      if (stored && (await getObjectOrUndefined(s3, bucket, keys.p7s))) return issued(stored);
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
    return issued(json);
  }
}

/** The S3 endpoint a certificate names for the buckets it lists. */
async function endpointOf(s3: S3Client): Promise<string> {
  const endpoint = await s3.config.endpoint?.();
  if (!endpoint) return `https://s3.${await s3.config.region()}.amazonaws.com`;
  return `${endpoint.protocol}//${endpoint.hostname}${endpoint.port ? `:${endpoint.port}` : ''}`;
}
