/**
 * Where everything lives in a jurisdiction's buckets: the one place a bucket key is built. Pure (no S3 client), so
 * workflows, activities, the CLI and tests share it.
 *
 * | bucket     | keys                                                                                        |
 * |------------|---------------------------------------------------------------------------------------------|
 * | landing    | `packages/<id>/…` uploads, `packages/<id>/rejection.json`, `consent/<study>/<sha256>.csv`   |
 * | quarantine | `packages/<id>/payload/…` rejected packages                                                 |
 * | curated    | `datasets/<id>/…` dataset objects, `preprocessed/<job>/run.json` run documentation          |
 * | catalog    | `datasets/<id>.json`, `studies/<study>.json`, `sources/<study>.json`, `consent/<study>/…`, |
 * |            | `vault/<study>/<dataset>.json`, `requests/<id>.json`, `retention/claims/<sweep>/…`,        |
 * |            | `erasure/journal/<operation>.json`, `erasure/results/<operation>.json`                      |
 * | evidence   | `audit/segments/<seq>.json`, `certificates/<id>.json|.p7s`, `certificates/bundles/…`        |
 */

// ---- landing and quarantine: uploaded packages and consent files

export const PACKAGES_PREFIX = 'packages/';

/** Where a package's files are uploaded (landing) and kept when rejected (quarantine). */
export function packagePrefix(packageId: string): string {
  return `${PACKAGES_PREFIX}${packageId}/`;
}

/** The package id of a key under `packages/<id>/`, or undefined. */
export function packageIdOf(prefix: string): string | undefined {
  if (!prefix.startsWith(PACKAGES_PREFIX)) return undefined;
  const id = prefix.slice(PACKAGES_PREFIX.length).split('/')[0];
  return id ? id : undefined;
}

/** One uploaded file of a package, by its path inside the package. */
export function packageFileKey(prefix: string, relative: string): string {
  return `${prefix}${relative}`;
}

/** A rejected package's payload files in quarantine. */
export function quarantinedFileKey(prefix: string, relative: string): string {
  return `${prefix}payload/${relative}`;
}

/** The report of why a package was rejected, beside its files. */
export function rejectionKey(prefix: string): string {
  return `${prefix}rejection.json`;
}

export const CONSENT_UPLOADS_PREFIX = 'consent/';

/** A consent CSV uploaded for import, named by its checksum. */
export function consentUploadKey(studyId: string, sha256: string): string {
  return `${CONSENT_UPLOADS_PREFIX}${studyId}/${sha256}.csv`;
}

// ---- curated: dataset objects and run documentation

export const DATASETS_PREFIX = 'datasets/';

/**
 * Where a dataset's objects are in its jurisdiction's curated bucket, curated or made by a preprocessing job alike:
 * retention sweeps and erasure delete a dataset by this prefix.
 */
export function datasetObjectPrefix(datasetId: string): string {
  return `${DATASETS_PREFIX}${datasetId}/`;
}

/** One object (a table, a file) of a dataset. */
export function datasetObjectKey(datasetId: string, name: string): string {
  return `${datasetObjectPrefix(datasetId)}${name}`;
}

/** Where a job keeps its run documentation in the curated bucket (a copy is beside each output dataset's objects). */
export function preprocessJobPrefix(jobId: string): string {
  return `preprocessed/${jobId}/`;
}

export function runDocumentKey(jobId: string): string {
  return `${preprocessJobPrefix(jobId)}run.json`;
}

// ---- catalog: records, registries, vault, retention claims, erasure journals

export function datasetRecordKey(datasetId: string): string {
  return `${DATASETS_PREFIX}${datasetId}.json`;
}

/** The dataset id of a catalog record key (`datasets/<id>.json`), or undefined. */
export function datasetIdOfRecordKey(key: string): string | undefined {
  return key.startsWith(DATASETS_PREFIX) && key.endsWith('.json')
    ? key.slice(DATASETS_PREFIX.length, -'.json'.length)
    : undefined;
}

export function studyRecordKey(studyId: string): string {
  return `studies/${studyId}.json`;
}

/** A study's registered source systems (see `steward sources`). */
export function sourceRegistryKey(studyId: string): string {
  return `sources/${studyId}.json`;
}

/** The registry as one object, as Steward wrote it before registries were made of parts; still read. */
export function legacyConsentRegistryKey(studyId: string): string {
  return `consent/${studyId}/registry.json`;
}

export function consentPartsPrefix(studyId: string): string {
  return `consent/${studyId}/parts/`;
}

export function consentPartKey(studyId: string, partId: string): string {
  return `${consentPartsPrefix(studyId)}${partId}.json`;
}

export function vaultPrefix(studyId: string): string {
  return `vault/${studyId}/`;
}

/** The shard of one dataset's vault entries. */
export function vaultShardKey(studyId: string, datasetId: string): string {
  return `${vaultPrefix(studyId)}${datasetId}.json`;
}

/** Which workflow run used a signed request (a request is used once). */
export function requestClaimKey(requestId: string): string {
  return `requests/${requestId}.json`;
}

/** An open subject request of a kind, by the subject's keyed digest: a second one while it is open is linked to it. */
export function openRequestsPrefix(kind: string): string {
  return `subjects/open/${kind}/`;
}

export function openRequestKey(kind: string, subjectDigest: string): string {
  return `${openRequestsPrefix(kind)}${subjectDigest}.json`;
}

/** Where the catalog bucket keeps subjects' restrictions (GDPR Art. 18), one object per request, by token only. */
export const RESTRICTIONS_PREFIX = 'subjects/restrictions/';

export function restrictionKey(requestId: string): string {
  return `${RESTRICTIONS_PREFIX}${requestId}.json`;
}

/** Where the catalog bucket keeps erased subjects' tombstones, one object per erasure request, by token and digest. */
export const TOMBSTONES_PREFIX = 'subjects/tombstones/';

export function tombstoneKey(requestId: string): string {
  return `${TOMBSTONES_PREFIX}${requestId}.json`;
}

/**
 * Where the catalog bucket keeps the tokens a key migration gave restricted or erased subjects: each maps a token the
 * study's restrictions or tombstones name to the same subject's token under the new key version, by token only.
 */
export const CARRIED_TOKENS_PREFIX = 'subjects/carried/';

export function carriedTokensKey(partId: string): string {
  return `${CARRIED_TOKENS_PREFIX}${partId}.json`;
}

/** Where the exports bucket keeps a subject access request's package (GDPR Art. 15). */
export function accessPackagePrefix(requestId: string): string {
  return `access/${requestId}/`;
}

/** The access request of an access package's prefix, or undefined. */
export function accessPackageRequestId(prefix: string): string | undefined {
  const match = /^access\/([^/]+)\/$/.exec(prefix);
  return match?.[1];
}

/** The catalog's record of an export: where it is and when it expires. */
export const EXPORT_RECORDS_PREFIX = 'exports/';

export function exportRecordKey(requestId: string): string {
  return `${EXPORT_RECORDS_PREFIX}${requestId}.json`;
}

/** Where the catalog bucket keeps the sweeps' claims: one object per claimed batch. */
export const CLAIMS_PREFIX = 'retention/claims/';

export function sweepClaimsPrefix(sweepId: string): string {
  return `${CLAIMS_PREFIX}${sweepId}/`;
}

export function claimsKey(sweepId: string, batch: number): string {
  return `${sweepClaimsPrefix(sweepId)}${String(batch).padStart(6, '0')}.json`;
}

/** Where an erasure operation journals what it is about to delete, and what it deleted. */
export const ERASURE_JOURNAL_PREFIX = 'erasure/journal/';

export function erasureJournalKey(operationId: string): string {
  return `${ERASURE_JOURNAL_PREFIX}${operationId}.json`;
}

/** What an erasure operation certified, once it has. */
export function erasureResultKey(operationId: string): string {
  return `erasure/results/${operationId}.json`;
}

/** A curated dataset's objects, its catalog record and its record's absence: what erasing a dataset deletes. */
export function datasetErasureTargets(buckets: { curated: string; catalog: string }, datasetId: string) {
  const record = { bucket: buckets.catalog, key: datasetRecordKey(datasetId) };
  return {
    targets: [
      { bucket: buckets.curated, prefixes: [datasetObjectPrefix(datasetId)], bypassGovernance: true },
      { bucket: buckets.catalog, prefixes: [record.key], bypassGovernance: false },
    ],
    known: [],
    records: [record],
    absent: [record],
  };
}

// ---- evidence: the audit trail's segments and deletion certificates

export const SEGMENTS_PREFIX = 'audit/segments/';

export function segmentKey(seq: number): string {
  return `${SEGMENTS_PREFIX}${String(seq).padStart(12, '0')}.json`;
}

export const CERTIFICATES_PREFIX = 'certificates/';
export const CERTIFICATE_BUNDLES_PREFIX = `${CERTIFICATES_PREFIX}bundles/`;

export function certificateKeys(certificateId: string): { json: string; p7s: string } {
  return { json: `${CERTIFICATES_PREFIX}${certificateId}.json`, p7s: `${CERTIFICATES_PREFIX}${certificateId}.p7s` };
}

/**
 * Certificates issued together (one per unit of an erasure operation) are stored together, write-once, in one bundle
 * object: each is still its own signed document. The first 16 hex digits of a bundled certificate's id name its bundle.
 */
export function certificateBundleKey(certificateId: string): string | undefined {
  const match = /^cert-([a-z]{2,8})-([0-9a-f]{16})[0-9a-f]{16}$/.exec(certificateId);
  return match ? `${CERTIFICATE_BUNDLES_PREFIX}${match[1]}-${match[2]}.json` : undefined;
}
