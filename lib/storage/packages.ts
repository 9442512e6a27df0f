import { HeadObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { datasetIdFor } from '../../contracts';
import { activeHolds } from '../../schemas/dataset';
import type { Jurisdiction } from '../../schemas/jurisdiction';
import { RAW_PACKAGE_CLASS } from '../../schemas/jurisdiction';
import type { PackageRetention, PackageScan } from '../../schemas/retention';
import { readDatasetRecord } from './catalog';
import { CONSENT_UPLOADS_PREFIX, PACKAGES_PREFIX, packageIdOf } from './layout';
import { inLanes } from '../runtime/lanes';
import type { StudyRecords } from './claims';
import { decideRetention, explainDecision } from '../retention/precedence';
import { addDuration } from '../retention/rules';

/** Object metadata the CLI sets on every raw upload: when it was submitted, and for which study. */
export const SUBMITTED_AT_METADATA = 'submitted-at';
export const STUDY_METADATA = 'study-id';

/** A raw upload deleted as one: a package's prefix, or one consent file. */
interface Unit {
  prefix: string;
  packageId: string | null;
  studyId: string | null;
  lastModified: string;
  firstKey: string;
}

const PAGE = 200;

/** The units of a landing or quarantine bucket after `after`, in key order: consent files, then packages. */
async function listUnits(
  s3: S3Client,
  bucket: string,
  role: 'landing' | 'quarantine',
  after: string | null,
): Promise<{ units: Unit[]; next: string | null }> {
  if (role === 'landing' && (after === null || after.startsWith(CONSENT_UPLOADS_PREFIX))) {
    const page = await s3.send(
      new ListObjectsV2Command({
        Bucket: bucket,
        Prefix: CONSENT_UPLOADS_PREFIX,
        MaxKeys: PAGE,
        StartAfter: after ?? CONSENT_UPLOADS_PREFIX,
      }),
    );
    const units = (page.Contents ?? [])
      .filter((o) => o.Key)
      .map((o) => ({
        prefix: o.Key!,
        packageId: null,
        studyId: o.Key!.split('/')[1] ?? null,
        lastModified: (o.LastModified ?? new Date()).toISOString(),
        firstKey: o.Key!,
      }));
    // The consent files end here: packages come next.
    return { units, next: page.IsTruncated ? units[units.length - 1]!.prefix : PACKAGES_PREFIX };
  }
  const page = await s3.send(
    new ListObjectsV2Command({
      Bucket: bucket,
      Prefix: PACKAGES_PREFIX,
      Delimiter: '/',
      MaxKeys: PAGE,
      ...(after && after > PACKAGES_PREFIX ? { StartAfter: after } : {}),
    }),
  );
  const prefixes = (page.CommonPrefixes ?? []).map((p) => p.Prefix!).filter(Boolean);
  const units: Unit[] = [];
  await inLanes(prefixes, 8, async (prefix) => {
    const objects = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    const contents = (objects.Contents ?? []).filter((o) => o.Key);
    if (contents.length === 0) return;
    const oldest = contents.reduce((a, b) => ((a.LastModified ?? 0) <= (b.LastModified ?? 0) ? a : b));
    units.push({
      prefix,
      packageId: packageIdOf(prefix) ?? null,
      studyId: null,
      lastModified: (oldest.LastModified ?? new Date()).toISOString(),
      firstKey: oldest.Key!,
    });
  });
  units.sort((a, b) => (a.prefix < b.prefix ? -1 : 1));
  return { units, next: page.IsTruncated ? (prefixes[prefixes.length - 1] ?? null) : null };
}

/**
 * One page of a landing or quarantine bucket's raw uploads, each decided at `asOf` under the jurisdiction's raw-staging
 * rule, counting from submission: the upload's `submitted-at` metadata, never later than storage's own date for it.
 * A legal hold on the package's dataset or on its study keeps it.
 */
export async function scanPackages(
  s3: S3Client,
  jurisdiction: Jurisdiction,
  options: { role: 'landing' | 'quarantine'; asOf: string; after: string | null; studies: StudyRecords },
): Promise<PackageScan> {
  const bucket = jurisdiction.buckets[options.role];
  const rule = jurisdiction.retention[RAW_PACKAGE_CLASS];
  if (!rule) throw new Error(`jurisdiction ${jurisdiction.id} has no ${RAW_PACKAGE_CLASS} retention rule`);
  const { units, next } = await listUnits(s3, bucket, options.role, options.after);
  const scan: PackageScan = { next, scanned: units.length, kept: 0, expired: [], held: [] };
  const decided = new Array<{ item: PackageRetention; outcome: 'expired' | 'held' | 'kept' } | undefined>(units.length);
  await inLanes([...units.keys()], 8, async (i) => {
    const unit = units[i]!;
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: unit.firstKey }));
    const claimed = head.Metadata?.[SUBMITTED_AT_METADATA];
    const submittedAt =
      claimed && !Number.isNaN(Date.parse(claimed)) && new Date(claimed).toISOString() < unit.lastModified
        ? new Date(claimed).toISOString()
        : unit.lastModified;
    const studyId = unit.studyId ?? head.Metadata?.[STUDY_METADATA] ?? null;
    const dataset = unit.packageId
      ? await readDatasetRecord(s3, jurisdiction.buckets.catalog, datasetIdFor(jurisdiction.id, unit.packageId))
      : undefined;
    const holds = dataset
      ? activeHolds(dataset).map((h) => `${h.holdId} on dataset ${dataset.datasetId} (${h.reason})`)
      : [];
    for (const s of new Set([studyId, dataset?.studyId].filter((x): x is string => Boolean(x)))) {
      const study = await options.studies.get(s);
      holds.push(...activeHolds(study).map((h) => `${h.holdId} on study ${s} (${h.reason})`));
    }
    const until = addDuration(submittedAt, rule.duration);
    const facts = {
      held: holds.length > 0,
      keepUntil: rule.minimum ? until : submittedAt,
      erasureRequested: false,
      expiresAt: until,
      asOf: options.asOf,
    };
    const decision = decideRetention(facts);
    const expired = until <= options.asOf;
    decided[i] = {
      item: {
        role: options.role,
        prefix: unit.prefix,
        packageId: unit.packageId,
        studyId,
        submittedAt,
        until,
        reason:
          decision.reason === 'legal-hold' ? `kept: legal hold ${holds.join('; ')}` : explainDecision(decision, facts),
      },
      outcome: decision.action === 'delete' ? 'expired' : expired && decision.reason === 'legal-hold' ? 'held' : 'kept',
    };
  });
  for (const entry of decided) {
    if (entry?.outcome === 'expired') scan.expired.push(entry.item);
    else if (entry?.outcome === 'held') scan.held.push(entry.item);
    else if (entry) scan.kept += 1;
  }
  return scan;
}
