import type { z } from 'zod';
import type { AuditChainRef } from '../../schemas/audit';
import type { DeletionCertificate, SubjectErasureRecord } from '../../schemas/certificate';
import type { DestroyedKeySchema, ErasedElsewhereSchema, ErasedVersion } from '../../schemas/erasure';
import type { ESignature } from '../../schemas/request';

/** The operation a certificate belongs to: who asked and approved, which workflow did it, when. */
export interface CertifiedOperation {
  jurisdiction: string;
  label: string;
  requestedBy: ESignature | null;
  approvedBy: ESignature[];
  workflow: { workflowId: string; runId: string };
  startedAt: string;
  completedAt: string;
}

/** One unit's erasure, as its parts report it. */
export interface CertifiedUnit {
  certificateId: string;
  reason: DeletionCertificate['reason'];
  auditChain: AuditChainRef;
  datasetId?: string;
  /** Its object versions, from the operation's journal, with the storage endpoint they were on. */
  objects?: {
    endpoint: string;
    /** The site's name, where the deployment has more than one. */
    site?: string;
    versions: ErasedVersion[];
    verified: boolean;
    verification: string[];
    startedAt: string;
    completedAt: string;
  };
  /** The same objects' versions at each further site (the disaster-recovery site), deleted and verified there. */
  replicas?: {
    site: string;
    endpoint: string;
    versions: ErasedVersion[];
    verified: boolean;
    verification: string[];
  }[];
  vault?: z.infer<typeof ErasedElsewhereSchema> & { endpoint: string };
  key?: z.infer<typeof DestroyedKeySchema>;
  /** A subject's erasure request: items, exemptions, residuals and the check that no object holds the subject. */
  subjectRequest?: SubjectErasureRecord;
}

export type UnsignedCertificate = Omit<DeletionCertificate, 'issuedAt' | 'issuer' | 'tools'>;

/**
 * The one certificate builder: what was sanitized (object versions, vault entries, key versions), how (NIST SP
 * 800-88 Clear for deleted versions, Purge for a cryptographic erase), how it was verified and with what result, when,
 * by which operation and workflow. The evidence signer adds tools, issuer and time, then signs.
 */
export function buildCertificate(operation: CertifiedOperation, unit: CertifiedUnit): UnsignedCertificate {
  const datasetId = unit.datasetId ? { datasetId: unit.datasetId } : {};
  const site = unit.objects?.site;
  const objectVersions = [
    ...(unit.objects?.versions.map((v) => ({ endpoint: unit.objects!.endpoint, site, v })) ?? []),
    ...(unit.replicas?.flatMap((r) => r.versions.map((v) => ({ endpoint: r.endpoint, site: r.site, v }))) ?? []),
    ...(unit.vault?.versions.map((v) => ({ endpoint: unit.vault!.endpoint, site, v })) ?? []),
  ];
  const techniques: string[] = [];
  const performed: string[] = [];
  if (objectVersions.length > 0 || unit.objects) {
    techniques.push(
      `S3 DeleteObjects of every object version and delete marker (versioned buckets), GOVERNANCE retention overridden under the bucket policy granted to Steward's workers, by ${operation.label}`,
    );
    performed.push('ListObjectVersions under every deleted prefix', 'HEAD of the catalog record');
    if (unit.replicas?.length) {
      performed.push(`the same at every site: ${[site, ...unit.replicas.map((r) => r.site)].join(', ')}`);
    }
  }
  if (unit.key) {
    techniques.push('cryptographic erase: the sealed key material is discarded from the key store');
    performed.push('key store state read back', 'load of the destroyed version attempted', 'live versions listed');
  }
  const request = unit.subjectRequest;
  if (request) {
    if (request.items.some((i) => i.decision === 'erased' && i.files)) {
      techniques.unshift(
        "rewrite of each raw upload kept under a duty to keep without the subject's rows, with a new manifest recording the original package digest and the request (SHA-256 of every file before and after recorded), then deletion of every older version",
      );
    }
    if (request.items.some((i) => i.decision === 'erased' && i.object)) {
      techniques.unshift(
        "rewrite of each object without the subject's rows as a new version (row counts and SHA-256 before and after recorded), then deletion of every older version",
      );
    }
    if (request.tombstoned) {
      techniques.push(
        "tombstone of the subject's tokens and keyed digest: later ingestion and processing exclude them",
      );
    }
    if (techniques.length === 0) techniques.push('none needed: no object of the jurisdiction held the subject');
    performed.push(request.verification.performed);
  }
  const verified =
    (unit.objects?.verified ?? true) &&
    (unit.replicas ?? []).every((r) => r.verified) &&
    (unit.vault?.verified ?? true) &&
    (unit.key?.verified ?? true) &&
    (request?.verification.passed ?? true);
  return {
    format: 'steward-deletion-certificate/1',
    certificateId: unit.certificateId,
    jurisdiction: operation.jurisdiction,
    reason: unit.reason,
    requestedBy: operation.requestedBy,
    approvedBy: operation.approvedBy,
    sanitized: {
      objects: objectVersions.map(({ endpoint, site, v }) => ({
        endpoint,
        ...(site ? { site } : {}),
        bucket: v.bucket,
        key: v.key,
        versionId: v.versionId,
        bytes: v.bytes,
        sha256: v.sha256,
        ...datasetId,
      })),
      keys: unit.key ? [{ keyId: unit.key.keyId, version: unit.key.version }] : [],
    },
    method: {
      category: unit.key ? 'Purge' : 'Clear',
      techniques,
      keyIdsDestroyed: unit.key ? [unit.key.keyId] : [],
    },
    verification: {
      performed,
      result: verified ? 'passed' : 'failed',
      details: [
        ...(unit.objects?.verification ?? []),
        ...(unit.replicas ?? []).flatMap((r) => r.verification.map((line) => `${r.site}: ${line}`)),
        ...(unit.vault ? [unit.vault.verification] : []),
        ...(unit.key?.verification ?? []),
        ...(request?.verification.details ?? []),
      ],
    },
    startedAt: unit.objects?.startedAt ?? operation.startedAt,
    completedAt: unit.objects?.completedAt ?? operation.completedAt,
    workflow: operation.workflow,
    auditChain: unit.auditChain,
    ...(request ? { subjectRequest: request } : {}),
  };
}
