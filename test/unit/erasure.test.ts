import { describe, expect, it } from 'vitest';
import { buildCertificate, type CertifiedOperation, type CertifiedUnit } from '../../lib/erasure/certificate';
import { mintCertificateIds } from '../../lib/erasure/ids';
import {
  certificateBundleKey,
  certificateKeys,
  datasetIdOfRecordKey,
  datasetRecordKey,
  packageIdOf,
  packagePrefix,
} from '../../lib/storage/layout';
import { DeletionCertificateSchema } from '../../schemas/certificate';

/** A deterministic stand-in for the workflow's uuid4: 1, 2, 3… in the first 16 of 32 hex digits. */
function counter(): () => string {
  let n = 0;
  return () => `${(++n).toString(16).padStart(16, '0')}${'f'.repeat(16)}`;
}

const auditChain = {
  jurisdiction: 'eu',
  position: 7,
  segment: 2,
  eventId: 'wf/run/1',
  eventHash: 'a'.repeat(64),
};

const operation: CertifiedOperation = {
  jurisdiction: 'eu',
  label: 'retention sweep S-1, batch datasets-0',
  requestedBy: null,
  approvedBy: [],
  workflow: { workflowId: 'S-1/erase/datasets-0', runId: 'r-1' },
  startedAt: '2026-12-03T10:00:00.000Z',
  completedAt: '2026-12-03T10:00:05.000Z',
};

function version(key: string, bytes: number) {
  return {
    bucket: 'steward-eu-curated',
    key,
    versionId: `v-${key}`,
    bytes,
    sha256: 'b'.repeat(64),
    deleteMarker: false,
  };
}

describe('certificate ids', () => {
  it('bundled ids share the 16 hex digits that name their bundle; ids stored alone do not', () => {
    const bundled = mintCertificateIds('eu', 3, true, counter());
    expect(bundled).toHaveLength(3);
    expect(new Set(bundled).size).toBe(3);
    for (const id of bundled) expect(id).toMatch(/^cert-eu-[0-9a-f]{32}$/);
    expect(new Set(bundled.map((id) => certificateBundleKey(id))).size).toBe(1);
    expect(certificateBundleKey(bundled[0]!)).toBe('certificates/bundles/eu-0000000000000001.json');

    const alone = mintCertificateIds('eu', 2, false, counter());
    expect(alone).toEqual(['cert-eu-0000000000000001ffffffffffffffff', 'cert-eu-0000000000000002ffffffffffffffff']);
    expect(certificateKeys(alone[0]!)).toEqual({
      json: 'certificates/cert-eu-0000000000000001ffffffffffffffff.json',
      p7s: 'certificates/cert-eu-0000000000000001ffffffffffffffff.p7s',
    });
  });

  it('the same uuid sequence mints the same ids, as a workflow replay must', () => {
    expect(mintCertificateIds('us', 4, true, counter())).toEqual(mintCertificateIds('us', 4, true, counter()));
  });
});

describe('the certificate builder', () => {
  const dataset: CertifiedUnit = {
    certificateId: 'cert-eu-0000000000000000000000000000000a',
    reason: { kind: 'retention', legalBasis: 'GDPR Art. 5(1)(e)', detail: 'expired' },
    auditChain,
    datasetId: 'ds-eu-1',
    objects: {
      endpoint: 'http://127.0.0.1:9000',
      versions: [version('datasets/ds-eu-1/t.parquet', 10), version('datasets/ds-eu-1.json', 3)],
      verified: true,
      verification: ['ListObjectVersions …: 0 versions or delete markers remain', 'HEAD …: not found'],
      startedAt: '2026-12-03T10:00:01.000Z',
      completedAt: '2026-12-03T10:00:02.000Z',
    },
    vault: {
      endpoint: 'http://127.0.0.1:9000',
      versions: [{ ...version('vault/ST/ds-eu-1.json', 5), bucket: 'steward-eu-catalog' }],
      verification: 'ListObjectVersions of the vault shard: 0 versions remain',
      verified: true,
    },
  };

  it('lists every version a dataset lost (its objects and its vault shard), cleared, naming the operation', () => {
    const c = buildCertificate(operation, dataset);
    expect(DeletionCertificateSchema.omit({ tools: true, issuedAt: true, issuer: true }).parse(c)).toEqual(c);
    expect(c.sanitized.objects.map((o) => [o.bucket, o.key, o.datasetId])).toEqual([
      ['steward-eu-curated', 'datasets/ds-eu-1/t.parquet', 'ds-eu-1'],
      ['steward-eu-curated', 'datasets/ds-eu-1.json', 'ds-eu-1'],
      ['steward-eu-catalog', 'vault/ST/ds-eu-1.json', 'ds-eu-1'],
    ]);
    expect(c.method.category).toBe('Clear');
    expect(c.method.techniques).toEqual([
      "S3 DeleteObjects of every object version and delete marker (versioned buckets), GOVERNANCE retention overridden under the bucket policy granted to Steward's workers, by retention sweep S-1, batch datasets-0",
    ]);
    expect(c.verification).toEqual({
      performed: ['ListObjectVersions under every deleted prefix', 'HEAD of the catalog record'],
      result: 'passed',
      details: [...dataset.objects!.verification, dataset.vault!.verification],
    });
    // The deletion's own times, from its journal.
    expect([c.startedAt, c.completedAt]).toEqual(['2026-12-03T10:00:01.000Z', '2026-12-03T10:00:02.000Z']);
  });

  it('fails the verification when any part of the unit is not verified', () => {
    const c = buildCertificate(operation, { ...dataset, vault: { ...dataset.vault!, verified: false } });
    expect(c.verification.result).toBe('failed');
  });

  it('a destroyed key version is purged: the key, no objects, the operation’s times', () => {
    const c = buildCertificate(operation, {
      certificateId: 'cert-eu-0000000000000000000000000000000b',
      reason: { kind: 'key-destruction', legalBasis: 'GDPR', detail: 'cryptographic erase' },
      auditChain,
      key: { keyId: 'study/eu/ST/v1', version: 1, verification: ['key store reports destroyed'], verified: true },
    });
    expect(c.sanitized).toEqual({ objects: [], keys: [{ keyId: 'study/eu/ST/v1', version: 1 }] });
    expect(c.method).toEqual({
      category: 'Purge',
      techniques: ['cryptographic erase: the sealed key material is discarded from the key store'],
      keyIdsDestroyed: ['study/eu/ST/v1'],
    });
    expect(c.verification.performed).toEqual([
      'key store state read back',
      'load of the destroyed version attempted',
      'live versions listed',
    ]);
    expect([c.startedAt, c.completedAt]).toEqual([operation.startedAt, operation.completedAt]);
  });
});

describe('storage layout', () => {
  it('reads back the ids it builds keys from', () => {
    expect(datasetIdOfRecordKey(datasetRecordKey('ds-eu-abc'))).toBe('ds-eu-abc');
    expect(datasetIdOfRecordKey('studies/ST.json')).toBeUndefined();
    expect(packageIdOf(packagePrefix('p-1'))).toBe('p-1');
    expect(packageIdOf('consent/ST/x.csv')).toBeUndefined();
  });
});
