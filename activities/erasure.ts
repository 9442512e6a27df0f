import { createHash } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import { Context } from '@temporalio/activity';
import pkg from '../package.json';
import { ErrorType, nonRetryable } from '../contracts';
import { evidenceRetainUntil, putEvidence } from '../lib/audit/store';
import { buildCertificate, type CertifiedUnit } from '../lib/erasure/certificate';
import { readJournal, readResult, writeResult } from '../lib/erasure/journal';
import { eraseObjects } from '../lib/erasure/objects';
import { CertificateBundleSchema, certificateBytes, type CertificateBundle } from '../lib/evidence/certificate';
import type { SignerMaterial } from '../lib/pki/authority';
import { signDetached } from '../lib/pki/cms';
import { certificateInfo } from '../lib/pki/x509';
import { getJson } from '../lib/storage/json';
import {
  accessPackageRequestId,
  certificateBundleKey,
  certificateKeys,
  datasetErasureTargets,
  datasetIdOfRecordKey,
} from '../lib/storage/layout';
import { dropDatasets, dropExport } from '../lib/subject-rights/subject-index';
import { getObjectOrUndefined } from '../lib/storage/objects';
import { drErasureJournalKey, type StandbySite } from '../lib/storage/replication';
import type { DeletionCertificate, IssuedCertificate } from '../schemas/certificate';
import {
  EraseObjectsInputSchema,
  IssueErasureCertificatesInputSchema,
  type EraseObjectsInput,
  type EraseObjectsResult,
  type ObjectErasure,
  type ErasureResult,
  ErasureResultSchema,
  type IssueErasureCertificatesInput,
} from '../schemas/erasure';
import type { Jurisdiction } from '../schemas/jurisdiction';
import { parseInput } from '../contracts/parse';
import { assertOwnBucket, assertOwnJurisdiction } from './guards';
import { baselineInForce } from '../lib/qualification/documents';

/** The versions of what did the sanitizing, as a certificate lists them. */
function toolVersions(): Record<string, string> {
  return {
    steward: pkg.version,
    node: process.version,
    'temporal-sdk': pkg.dependencies['@temporalio/worker'],
    'aws-sdk-s3': pkg.dependencies['@aws-sdk/client-s3'],
    'node-forge': pkg.dependencies['node-forge'],
  };
}

type EraseObjectsUnit = ReturnType<typeof EraseObjectsInputSchema.parse>['units'][number];

export interface ErasureActivityDeps {
  s3: S3Client;
  jurisdiction: Jurisdiction;
  /** The jurisdiction's evidence signer. */
  signer: () => Promise<SignerMaterial>;
  caPem: () => string;
  /** The disaster-recovery site: every erasure deletes and verifies there too, and its certificates name both sites. */
  dr?: StandbySite | undefined;
}

function heartbeat(details: unknown): void {
  try {
    Context.current().heartbeat(details);
  } catch {
    // Outside an activity (a unit test calling the function directly): nothing to report to.
  }
}

/** Erasure in one jurisdiction's buckets: deletion with a journal and verified absence, then signed certificates. */
export function createErasureActivities({ s3, jurisdiction, signer, caPem, dr }: ErasureActivityDeps) {
  const journals = jurisdiction.buckets.catalog;
  const evidence = jurisdiction.buckets.evidence;
  return {
    /**
     * Deletes every version of the units' objects and verifies the absence, journaled in the catalog bucket so a retry
     * after a crash finishes what an attempt started and certifies everything (see `eraseObjects`).
     */
    async eraseObjectsActivity(raw: EraseObjectsInput): Promise<EraseObjectsResult> {
      const input = parseInput(EraseObjectsInputSchema, raw, 'eraseObjectsActivity');
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      const units = input.units.map((u) => ({ unitId: u.unitId, objects: objectsOf(u) }));
      for (const unit of units) for (const t of unit.objects.targets) assertOwnBucket(jurisdiction, t.bucket);
      const done = await eraseObjects(s3, journals, input.operationId, units, (phase) => heartbeat({ phase }));
      // Then the same units at the DR site, journaled there apart from the replica of the primary's journal. A DR site
      // that cannot be reached fails the activity, which is retried: no certificate before both sites are done.
      const drDone = dr
        ? await eraseObjects(
            dr.s3,
            journals,
            input.operationId,
            units.filter((u) => !done.failed.some((f) => f.unitId === u.unitId)),
            (phase) => heartbeat({ site: dr.names.standby, phase }),
            drErasureJournalKey(input.operationId),
          )
        : undefined;
      const failed = [
        ...done.failed,
        ...(drDone?.failed ?? []).map((f) => ({ ...f, reason: `${dr?.names.standby}: ${f.reason}` })),
      ];
      const drVerified = new Map((drDone?.outcomes ?? []).map((o) => [o.unitId, o.verified]));
      // Datasets whose records are gone, and access packages deleted, leave the subject index.
      const targets = units.flatMap((u) => u.objects.targets);
      const datasets = targets
        .filter((t) => t.bucket === jurisdiction.buckets.catalog)
        .flatMap((t) => t.prefixes.map(datasetIdOfRecordKey))
        .filter((id): id is string => id !== undefined && !id.includes('/'));
      if (datasets.length > 0) await dropDatasets({ s3, jurisdiction }, datasets);
      for (const t of targets.filter((t) => t.bucket === jurisdiction.buckets.exports)) {
        for (const prefix of t.prefixes) {
          const requestId = accessPackageRequestId(prefix);
          if (requestId) await dropExport({ s3, jurisdiction }, requestId);
        }
      }
      return {
        erased: done.outcomes
          .filter((o) => !failed.some((f) => f.unitId === o.unitId))
          .map((o) => ({
            unitId: o.unitId,
            versions: o.versions.length,
            bytes: o.versions.reduce((sum, v) => sum + v.bytes, 0),
            verified: o.verified && (drVerified.get(o.unitId) ?? !dr),
          })),
        failed,
      };
    },

    /** What the operation certified, when an earlier run of it got that far: reads only. */
    async erasureResultActivity(raw: { jurisdiction: string; operationId: string }): Promise<ErasureResult | null> {
      assertOwnJurisdiction(jurisdiction, raw.jurisdiction);
      return (await readResult(s3, journals, raw.operationId)) ?? null;
    },

    /** Records in the operation's journal what it certified. Idempotent. */
    async recordErasureResultActivity(raw: { jurisdiction: string; result: ErasureResult }): Promise<void> {
      assertOwnJurisdiction(jurisdiction, raw.jurisdiction);
      await writeResult(s3, journals, ErasureResultSchema.parse(raw.result));
    },

    /**
     * Signs the operation's certificates as detached CMS with the evidence signer and stores them write-once under
     * COMPLIANCE Object Lock: together in one bundle, or each alone beside its signature. Each lists every version its
     * unit lost (from the operation's journal), the verification and its result, and cites its sealed audit event. A
     * retry returns certificates already stored as they are: never a second set.
     */
    async issueErasureCertificatesActivity(raw: IssueErasureCertificatesInput): Promise<IssuedCertificate[]> {
      const input = parseInput(IssueErasureCertificatesInputSchema, raw, 'issueErasureCertificatesActivity');
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      const bundleKey = input.bundled ? certificateBundleKey(input.certificates[0]!.certificateId) : undefined;
      if (
        input.bundled &&
        (!bundleKey || input.certificates.some((c) => certificateBundleKey(c.certificateId) !== bundleKey))
      ) {
        throw nonRetryable(ErrorType.InvalidInput, 'the certificates of one bundle must share one bundle id');
      }
      const retry = Context.current().info.attempt > 1;
      if (retry) {
        const stored = await storedAlready(input, bundleKey);
        if (stored) return stored;
      }
      const journal = input.certificates.some((c) => c.objects)
        ? await readJournal(s3, journals, input.operationId)
        : undefined;
      const outcomes = new Map((journal?.done?.outcomes ?? []).map((o) => [o.unitId, o]));
      const drJournal =
        dr && journal
          ? await readJournal(dr.s3, journals, input.operationId, drErasureJournalKey(input.operationId))
          : undefined;
      const drOutcomes = new Map((drJournal?.done?.outcomes ?? []).map((o) => [o.unitId, o]));
      const endpoint = await endpointOf(s3);
      const material = await signer();
      const info = certificateInfo(material.certificatePem);
      const tools = toolVersions();
      const baseline = await baselineInForce(s3, evidence, caPem());
      const signed: { certificateId: string; json: Buffer; p7s: Buffer }[] = [];
      for (const c of input.certificates) {
        const outcome = outcomes.get(c.unitId);
        if (c.objects && (!outcome || !journal?.done)) {
          throw new Error(`erasure ${input.operationId} has no journaled deletion of ${c.unitId} yet`);
        }
        const drOutcome = drOutcomes.get(c.unitId);
        if (c.objects && dr && (!drOutcome || !drJournal?.done)) {
          throw new Error(
            `erasure ${input.operationId} has no journaled deletion of ${c.unitId} at ${dr.names.standby} yet`,
          );
        }
        const unit: CertifiedUnit = {
          certificateId: c.certificateId,
          reason: c.reason,
          auditChain: c.auditChain,
          ...(c.datasetId ? { datasetId: c.datasetId } : {}),
          ...(outcome && journal?.done
            ? {
                objects: {
                  endpoint,
                  ...(dr ? { site: dr.names.active } : {}),
                  versions: outcome.versions,
                  verified: outcome.verified,
                  verification: outcome.verification,
                  startedAt: journal.startedAt,
                  completedAt: drJournal?.done?.completedAt ?? journal.done.completedAt,
                },
                ...(dr && drOutcome
                  ? {
                      replicas: [
                        {
                          site: dr.names.standby,
                          endpoint: dr.endpoint,
                          versions: drOutcome.versions,
                          verified: drOutcome.verified,
                          verification: drOutcome.verification,
                        },
                      ],
                    }
                  : {}),
              }
            : {}),
          ...(c.vault ? { vault: { ...c.vault, endpoint } } : {}),
          ...(c.key ? { key: c.key } : {}),
          ...(c.subjectRequest ? { subjectRequest: c.subjectRequest } : {}),
        };
        const certificate: DeletionCertificate = {
          ...buildCertificate(input, unit),
          tools,
          issuedAt: input.now,
          issuer: { name: info.name, certificateSerial: info.serial, certificateFingerprint: info.fingerprint },
          baseline,
        };
        const json = certificateBytes(certificate);
        signed.push({ certificateId: c.certificateId, json, p7s: signDetached(json, material, [caPem()]) });
        if (signed.length % 50 === 0) heartbeat({ signed: signed.length });
      }
      const retainUntil = evidenceRetainUntil(jurisdiction, 'deletion-certificate', input.now);
      if (bundleKey) {
        const bundle: CertificateBundle = {
          format: 'steward-certificate-bundle/1',
          certificates: signed.map((s) => ({
            certificateId: s.certificateId,
            json: s.json.toString('base64'),
            p7s: s.p7s.toString('base64'),
          })),
        };
        await putEvidence(
          s3,
          evidence,
          bundleKey,
          Buffer.from(JSON.stringify(bundle)),
          'application/json',
          retainUntil,
        );
        return issuedFrom(bundle, bundleKey);
      }
      for (const s of signed) {
        const keys = certificateKeys(s.certificateId);
        // The signature first: a certificate file is only ever found with its signature beside it.
        await putEvidence(s3, evidence, keys.p7s, s.p7s, 'application/pkcs7-signature', retainUntil);
        await putEvidence(s3, evidence, keys.json, s.json, 'application/json', retainUntil);
      }
      return signed.map((s) => issuedAlone(s.certificateId, s.json));
    },
  };

  /** What a unit deletes from storage: a whole dataset where it names one, and the objects it names. */
  function objectsOf(unit: EraseObjectsUnit): ObjectErasure {
    const named = unit.objects;
    if (!unit.dataset) return named!;
    const dataset = datasetErasureTargets(jurisdiction.buckets, unit.dataset.datasetId);
    return {
      targets: [...dataset.targets.map((t) => ({ ...t, keep: [] })), ...(named?.targets ?? [])],
      known: [...dataset.known, ...(named?.known ?? [])],
      records: [...dataset.records, ...(named?.records ?? [])],
      absent: [...dataset.absent, ...(named?.absent ?? [])],
    };
  }

  function issuedAlone(certificateId: string, json: Buffer): IssuedCertificate {
    const keys = certificateKeys(certificateId);
    return {
      certificateId,
      bucket: evidence,
      jsonKey: keys.json,
      signatureKey: keys.p7s,
      sha256: createHash('sha256').update(json).digest('hex'),
    };
  }

  function issuedFrom(bundle: CertificateBundle, bundleKey: string): IssuedCertificate[] {
    return bundle.certificates.map((c) => ({
      certificateId: c.certificateId,
      bucket: evidence,
      jsonKey: bundleKey,
      signatureKey: bundleKey,
      sha256: createHash('sha256').update(Buffer.from(c.json, 'base64')).digest('hex'),
    }));
  }

  /** The certificates an earlier attempt stored, when it stored them all. */
  async function storedAlready(
    input: ReturnType<typeof IssueErasureCertificatesInputSchema.parse>,
    bundleKey: string | undefined,
  ): Promise<IssuedCertificate[] | undefined> {
    if (bundleKey) {
      const bundle = await getJson(s3, evidence, bundleKey, CertificateBundleSchema);
      return bundle ? issuedFrom(bundle, bundleKey) : undefined;
    }
    const issued: IssuedCertificate[] = [];
    for (const c of input.certificates) {
      const keys = certificateKeys(c.certificateId);
      const json = await getObjectOrUndefined(s3, evidence, keys.json);
      if (!json || !(await getObjectOrUndefined(s3, evidence, keys.p7s))) return undefined;
      issued.push(issuedAlone(c.certificateId, json));
    }
    return issued;
  }
}

/** The S3 endpoint a certificate names for the buckets it lists. */
async function endpointOf(s3: S3Client): Promise<string> {
  const endpoint = await s3.config.endpoint?.();
  if (!endpoint) return `https://s3.${await s3.config.region()}.amazonaws.com`;
  return `${endpoint.protocol}//${endpoint.hostname}${endpoint.port ? `:${endpoint.port}` : ''}`;
}
