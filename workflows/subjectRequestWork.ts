import { patched, proxyActivities, sleep } from '@temporalio/workflow';
import type { createSubjectRightsActivities } from '../activities/subject-rights';
import { curationTaskQueue, ErrorType, nonRetryable } from '../contracts';
import { getJurisdiction } from '../jurisdictions';
import { datasetErasureTargets, exportRecordKey } from '../lib/storage/layout';
import type { ErasureItem } from '../lib/subject-rights/erasure';
import type { RewriteResult } from '../lib/subject-rights/erasure';
import { shiftIso } from '../lib/subject-rights/deadlines';
import { describePlace, itemIdOf } from '../lib/subject-rights/places';
import type { RewrittenUpload } from '../lib/subject-rights/upload-rewrite';
import type { SubjectErasureRecord } from '../schemas/certificate';
import { eraseUnits } from './eraseUnits';
import type { Principal } from '../schemas/common';
import type {
  DecisionParams,
  ErasureOverride,
  RequestStep,
  SubjectRequestKind,
  SubjectRequestParams,
  SubjectRequestState,
  SubjectPlace,
  SubjectRequestStatus,
  SubjectTokens,
} from '../schemas/subject-request';
import type { AuditDraft } from './audit';
import type { Authorized } from './authorize';
import { changeCatalog } from './catalog';
import { rerunDerivedOutput, type DerivedRerun } from './preprocessJob';
import { setPhase } from './progress';

const subjects = proxyActivities<ReturnType<typeof createSubjectRightsActivities>>({
  startToCloseTimeout: '1 minute',
  // Reads the key store only: a few quick retries, then the request waits for the DPO's retry.
  retry: { maximumAttempts: 5, initialInterval: '1s' },
});

/** Reading every place of the jurisdiction, and writing the package: long work, on the curation queue. */
function curation(jurisdiction: string) {
  return proxyActivities<ReturnType<typeof createSubjectRightsActivities>>({
    startToCloseTimeout: '2 hours',
    // Each of these heartbeats every two seconds: one whose worker died is tried again on another within half a minute.
    heartbeatTimeout: '30 seconds',
    // Storage outages clear within a few tries; after that the request waits for the DPO's retry.
    retry: { maximumAttempts: 5, initialInterval: '2s', maximumInterval: '30 seconds' },
    taskQueue: curationTaskQueue(jurisdiction),
  });
}

/**
 * How long an erasure waits for jobs that started before its tombstone. A job still running after that is caught by the
 * verification through the index, which then fails the request for the DPO's retry.
 */
const IN_FLIGHT_WAIT_MS = 10 * 60_000;

/** What a request's work needs from its workflow. */
export interface WorkContext {
  jurisdiction: string;
  /** The subject's keyed digest: what a tombstone keeps ingestion from bringing them back by. */
  subjectDigest: string;
  auth: Authorized<SubjectRequestParams>;
  status: SubjectRequestStatus;
  step: (name: string, by: Principal | null, extra?: Partial<RequestStep>) => void;
  audit: (drafts: AuditDraft[], principal?: Principal | null) => Promise<unknown>;
  /** Exemptions the DPO's approval overrides (dataset ids with the signed reason). */
  overrides: () => ErasureOverride[];
}

/**
 * The work of a request once it may proceed, as named steps: `run` performs the steps not yet done (so a retry after a
 * failure goes on from the step that failed), `current` names the step running or failed, `done` the state the
 * request is in after the last step.
 */
export interface RequestWork {
  run(): Promise<void>;
  current(): string;
  done(): SubjectRequestState;
  /** Ends a restriction (the `lift` decision). */
  lift?(decision: Authorized<DecisionParams>): Promise<void>;
}

/** Steps run in order; each one's result is kept, so a retry skips what is done. */
class Steps {
  private readonly results = new Map<string, unknown>();
  private running = '';

  current(): string {
    return this.running;
  }

  async once<T>(name: string, work: () => Promise<T>): Promise<T> {
    if (this.results.has(name)) return this.results.get(name) as T;
    this.running = name;
    setPhase(name);
    const result = await work();
    this.results.set(name, result);
    return result;
  }
}

function tokenCounts(found: SubjectTokens) {
  return {
    studies: found.studies.filter((s) => s.tokens.length > 0).length,
    tokens: found.studies.reduce((n, s) => n + s.tokens.length, 0),
    cryptoErasedVersions: found.studies.reduce((n, s) => n + s.cryptoErased.length, 0),
  };
}

/**
 * Restriction (GDPR Art. 18): the subject's tokens under every live key version of every study (or the one named) are
 * recorded as restricted in the catalog; preprocessing leaves their rows out (counted as `restricted`) until the DPO
 * lifts the restriction with a signed decision.
 */
function restrictionWork(ctx: WorkContext): RequestWork {
  const steps = new Steps();
  const { auth, status } = ctx;
  return {
    current: () => steps.current(),
    done: () => 'restricted',
    async run() {
      const found = await findTokens(steps, auth);
      const studies = found.studies
        .filter((s) => s.tokens.length > 0)
        .map((s) => ({ studyId: s.studyId, tokens: s.tokens.map((t) => t.token) }));
      await steps.once('recording the restriction', () =>
        changeCatalog(ctx.jurisdiction, {
          kind: 'subject.restricted',
          requestId: auth.requestId,
          subjectDigest: ctx.subjectDigest,
          studies,
          at: new Date().toISOString(),
        }),
      );
      const counts = tokenCounts(found);
      Object.assign(status.outcome, counts);
      await steps.once('auditing the restriction', async () => {
        ctx.step('restricted', null, { details: counts });
        await ctx.audit(
          [
            {
              action: 'dsr.restricted',
              outcome: 'success',
              reason: auth.params.reason,
              targets: { subjectTokens: studies.flatMap((s) => s.tokens) },
              details: { kind: 'restriction', ...counts },
            },
          ],
          null,
        );
      });
    },
    async lift(decision) {
      await changeCatalog(ctx.jurisdiction, {
        kind: 'subject.restriction-lifted',
        requestId: auth.requestId,
        at: new Date().toISOString(),
        by: decision.eSignature,
        reason: decision.params.reason,
      });
    },
  };
}

function findTokens(steps: Steps, auth: WorkContext['auth']): Promise<SubjectTokens> {
  return steps.once('finding the subject’s tokens', () =>
    subjects.subjectTokensActivity({
      subjectId: auth.params.subjectId,
      ...(auth.params.studyId ? { studyId: auth.params.studyId } : {}),
    }),
  );
}

/**
 * Access (GDPR Art. 15, HIPAA 164.524): the subject's tokens under every live key version, every place of the
 * jurisdiction that holds them, and a signed package of their data, consent history and the Art. 15(1) facts in the
 * jurisdiction's exports bucket (`steward dsr export` downloads and checks it).
 */
function accessWork(ctx: WorkContext): RequestWork {
  const steps = new Steps();
  const { auth, status } = ctx;
  const heavy = curation(ctx.jurisdiction);
  return {
    current: () => steps.current(),
    done: () => 'completed',
    async run() {
      const found = await findTokens(steps, auth);
      const discovery = await steps.once('finding the subject’s data', () => heavy.discoverSubjectActivity({ found }));
      const datasets = discovery.places.filter((p) => p.kind === 'dataset');
      Object.assign(status.outcome, {
        ...tokenCounts(found),
        places: discovery.places.length,
        datasets: new Set(datasets.map((p) => p.datasetId)).size,
        objectsRead: discovery.read.objects,
        bytesRead: discovery.read.bytes,
      });
      const built = await steps.once('writing the access package', () =>
        heavy.buildAccessPackageActivity({
          requestId: auth.requestId,
          found,
          places: discovery.places,
          at: new Date().toISOString(),
        }),
      );
      Object.assign(status.outcome, {
        package: `${built.bucket}/${built.prefix}`,
        files: built.files,
        rows: built.rows,
        reidentifiedDatasets: built.reidentified,
        manifestSha256: built.manifestSha256,
        expiresAt: built.expiresAt,
      });
      await steps.once('auditing the disclosure', async () => {
        ctx.step('disclosed', null, { details: { package: `${built.bucket}/${built.prefix}`, rows: built.rows } });
        await ctx.audit(
          [
            {
              action: 'dsr.disclosed',
              outcome: 'success',
              reason: auth.params.reason,
              targets: {
                subjectTokens: found.studies.flatMap((s) => s.tokens.map((t) => t.token)),
                objects: [{ bucket: built.bucket, key: `${built.prefix}manifest.json`, sha256: built.manifestSha256 }],
              },
              details: {
                kind: 'access',
                datasets: built.datasets,
                rows: built.rows,
                files: built.files,
                expiresAt: built.expiresAt,
                objectsRead: discovery.read.objects,
                bytesRead: discovery.read.bytes,
              },
            },
          ],
          null,
        );
      });
    },
  };
}

/**
 * Erasure (GDPR Art. 17), once approved: the subject is tombstoned first (by token and keyed digest, so no ingestion
 * running meanwhile or later brings them back), every place found is decided (erased, or kept with its legal basis),
 * each table to erase is rewritten without the subject's rows and its dataset record updated, vault entries are
 * destroyed, a full scan verifies no erased place still holds the subject, and one erasure operation deletes every older
 * version of the rewritten objects and issues the request's signed certificate: every item, exemption, residual and
 * the verification.
 */
function erasureWork(ctx: WorkContext): RequestWork {
  const steps = new Steps();
  const { auth, status } = ctx;
  const heavy = curation(ctx.jurisdiction);
  const rules = getJurisdiction(ctx.jurisdiction);
  const noRight = rules.dsr.erasure
    ? undefined
    : (rules.dsr.noRightBasis.erasure ?? 'no right to erasure in this jurisdiction');
  let kept = 0;
  return {
    current: () => steps.current(),
    done: () => (kept > 0 ? 'completed-with-exemptions' : 'completed'),
    async run() {
      const found = await findTokens(steps, auth);
      const byStudy = new Map(found.studies.map((s) => [s.studyId, s.tokens.map((t) => t.token)]));
      const studies = found.studies
        .filter((s) => s.tokens.length > 0)
        .map((s) => ({ studyId: s.studyId, tokens: s.tokens.map((t) => t.token) }));
      if (!noRight) {
        const { at } = await steps.once('tombstoning the subject', async () => {
          const tombstonedAt = new Date().toISOString();
          await changeCatalog(ctx.jurisdiction, {
            kind: 'subject.tombstoned',
            requestId: auth.requestId,
            subjectDigest: ctx.subjectDigest,
            studies,
            at: tombstonedAt,
          });
          return { at: tombstonedAt };
        });
        // An ingestion or preprocessing job that started before the tombstone may not have seen it: the places are
        // looked for once those have finished, so what they write is found and erased too.
        await steps.once('waiting for jobs started before the tombstone', async () => {
          const until = Date.now() + IN_FLIGHT_WAIT_MS;
          for (;;) {
            const { running } = await subjects.inFlightJobsActivity({
              startedBefore: at,
              studyIds: studies.map((st) => st.studyId),
            });
            if (running.length === 0 || Date.now() >= until) return { waitedFor: running.length };
            setPhase(
              `waiting for ${running.length} jobs started before the tombstone (${running.slice(0, 3).join(', ')})`,
            );
            await sleep('5 seconds');
          }
        });
      }
      const discovery = await steps.once('finding the subject’s data', () => heavy.discoverSubjectActivity({ found }));
      const findUploads = () =>
        heavy.discoverUploadsActivity({
          subjectId: auth.params.subjectId,
          ...(auth.params.studyId ? { studyId: auth.params.studyId } : {}),
        });
      const uploads = await steps.once('finding the subject’s raw uploads', findUploads);
      const items = await steps.once('deciding each place', () =>
        heavy.decideErasureItemsActivity({
          places: [...discovery.places, ...uploads.places],
          asOf: new Date().toISOString(),
          ...(noRight ? { noRight } : {}),
          overrides: ctx.overrides(),
        }),
      );
      kept = items.filter((i) => i.decision === 'keep').length;
      const rewrites: RewriteResult[] = [];
      const tableOf = (r: RewriteResult) =>
        items.find((i) => i.itemId === r.itemId)!.place as Extract<SubjectPlace, { kind: 'dataset' }>;
      const rewritten = items.filter(
        (i) => i.decision === 'erase' && i.place.kind === 'dataset' && i.action !== 'delete',
      );
      for (const item of rewritten) {
        const place = item.place as Extract<SubjectPlace, { kind: 'dataset' }>;
        const rewritten = await steps.once(`rewriting ${item.itemId}`, () =>
          heavy.rewriteWithoutSubjectActivity({ item, tokens: byStudy.get(place.studyId)! }),
        );
        await steps.once(`recording ${item.itemId}`, () =>
          changeCatalog(ctx.jurisdiction, {
            kind: 'dataset.rows-erased',
            datasetId: place.datasetId,
            output: rewritten.output,
            erasure: {
              requestId: auth.requestId,
              table: place.table,
              rowsRemoved: rewritten.rowsBefore - rewritten.rowsAfter,
              before: {
                versionId: rewritten.before.versionId,
                sha256: rewritten.before.sha256,
                rows: rewritten.rowsBefore,
              },
              after: {
                versionId: rewritten.after.versionId,
                sha256: rewritten.after.sha256,
                rows: rewritten.rowsAfter,
              },
              at: new Date().toISOString(),
            },
          }),
        );
        rewrites.push(rewritten);
      }
      for (const item of items) {
        const place = item.place;
        if (item.decision !== 'erase' || place.kind !== 'vault') continue;
        await steps.once(`destroying ${item.itemId}`, () =>
          changeCatalog(ctx.jurisdiction, {
            kind: 'vault.entries-destroyed',
            studyId: place.studyId,
            tokens: byStudy.get(place.studyId)!,
          }),
        );
      }
      // A raw upload kept under its dataset's duty to keep, whose dataset the DPO's override erased: rewritten too.
      const uploadRewrites = new Map<string, RewrittenUpload>();
      for (const item of items) {
        if (item.decision !== 'erase' || item.place.kind !== 'upload' || item.action !== 'rewrite') continue;
        const rewritten = await steps.once(`rewriting ${item.itemId}`, () =>
          heavy.rewriteUploadWithoutSubjectActivity({
            item,
            subjectId: auth.params.subjectId,
            requestId: auth.requestId,
            at: new Date().toISOString(),
          }),
        );
        uploadRewrites.set(item.itemId, rewritten);
      }
      // Derived outputs made again from their run documentation without the subject, before the old ones are deleted.
      const reruns = new Map<string, DerivedRerun>();
      if (patched('erasure-reruns-derived-outputs')) {
        const deleted = new Set(
          items.flatMap((i) =>
            i.decision === 'erase' && i.action === 'delete' && i.place.kind === 'dataset' ? [i.place.datasetId] : [],
          ),
        );
        for (const item of items) {
          const { place, rerun } = item;
          if (item.decision !== 'erase' || place.kind !== 'dataset' || !rerun || reruns.has(place.datasetId)) continue;
          const outcome: DerivedRerun = deleted.has(rerun.fromDatasetId)
            ? { rerun: false, reason: `its input ${rerun.fromDatasetId} is deleted by this erasure too` }
            : await steps.once(`making ${place.datasetId} again without the subject`, () =>
                rerunDerivedOutput(ctx.jurisdiction, auth.principal, auth.requestId, {
                  datasetId: place.datasetId,
                  ...rerun,
                }),
              );
          reruns.set(place.datasetId, outcome);
        }
      }
      const rerunOutputs = new Set([...reruns.values()].flatMap((r) => (r.rerun ? [r.datasetId] : [])));
      await steps.once('removing the subject from the index', () =>
        heavy.eraseFromIndexActivity({
          tokens: studies.flatMap((s) => s.tokens),
          rewritten: rewrites.map((r) => {
            const place = tableOf(r);
            return {
              datasetId: place.datasetId,
              table: place.table,
              versionId: r.after.versionId,
              sha256: r.after.sha256,
            };
          }),
          kept: items
            .filter((i) => i.decision === 'keep' && i.place.kind === 'dataset')
            .map((i) => {
              const place = i.place as Extract<SubjectPlace, { kind: 'dataset' }>;
              return { datasetId: place.datasetId, table: place.table };
            }),
        }),
      );
      const after = await steps.once('verifying by a full scan', () =>
        heavy.discoverSubjectActivity({ found, by: 'scan' }),
      );
      const indexed = await steps.once('verifying through the index', () => heavy.discoverSubjectActivity({ found }));
      const uploadsAfter =
        uploadRewrites.size > 0 ? await steps.once('verifying the rewritten raw uploads', findUploads) : undefined;
      // What is deleted whole (derived outputs, raw uploads, access packages) goes in the erasure operation below,
      // which verifies its absence itself; the rest must no longer hold the subject now.
      const deletedWhole = (i: ErasureItem) =>
        i.action === 'delete' || (i.place.kind === 'upload' && i.action !== 'rewrite') || i.place.kind === 'export';
      const erasedIds = new Set(items.filter((i) => i.decision === 'erase' && !deletedWhole(i)).map((i) => i.itemId));
      const derivedDeleted = items.flatMap((i) =>
        i.decision === 'erase' && i.action === 'delete' && i.place.kind === 'dataset' ? [i.place] : [],
      );
      const survivors = [...after.places, ...indexed.places, ...(uploadsAfter?.places ?? [])].filter(
        (p) => erasedIds.has(itemIdOf(p)) || (p.kind === 'dataset' && rerunOutputs.has(p.datasetId)),
      );
      const uploadsErased = items.flatMap((i) =>
        i.decision === 'erase' && i.place.kind === 'upload' && !uploadRewrites.has(i.itemId) ? [i.place] : [],
      );
      const uploadsRewritten = items.flatMap((i) => {
        const r = uploadRewrites.get(i.itemId);
        return r && i.place.kind === 'upload' ? [{ place: i.place, rewritten: r }] : [];
      });
      const exportsErased = items.flatMap((i) =>
        i.decision === 'erase' && i.place.kind === 'export' ? [i.place] : [],
      );
      const byItem = new Map(rewrites.map((r) => [r.itemId, r]));
      const audit = rules.retention['audit-trail'];
      const record: SubjectErasureRecord = {
        requestId: auth.requestId,
        studies: studies.length,
        tokens: studies.reduce((n, s) => n + s.tokens.length, 0),
        tombstoned: !noRight,
        items: [
          ...items.map((i) => {
            const r = byItem.get(i.itemId);
            return {
              itemId: i.itemId,
              place: describePlace(i.place),
              decision: i.decision === 'erase' ? ('erased' as const) : ('kept' as const),
              legalBasis:
                i.place.kind === 'dataset' ? withRerun(i.legalBasis, reruns.get(i.place.datasetId)) : i.legalBasis,
              until: i.until,
              ...(uploadRewrites.has(i.itemId) ? { files: uploadRewrites.get(i.itemId)!.files } : {}),
              object:
                i.place.kind === 'dataset'
                  ? {
                      bucket: i.place.bucket,
                      key: i.place.key,
                      before: {
                        versionId: i.place.versionId,
                        sha256: i.place.sha256,
                        rows: r?.rowsBefore ?? i.place.rows,
                      },
                      after: r ? { versionId: r.after.versionId, sha256: r.after.sha256, rows: r.rowsAfter } : null,
                    }
                  : null,
            };
          }),
          ...discovery.cryptoErased.map((c) => ({
            itemId: `keys/${c.studyId}`,
            place: `study ${c.studyId}, key versions ${c.versions.join(', ')}`,
            decision: 'crypto-erased' as const,
            legalBasis: 'the key versions were destroyed: what they pseudonymized can no longer be linked to anyone',
            until: null,
            object: null,
          })),
        ],
        residuals: [
          {
            what: 'audit events of this request and of the erased data (subject tokens only, write-once)',
            legalBasis: audit?.legalBasis ?? 'accountability (GDPR Art. 5(2))',
            until: audit ? shiftIso(new Date().toISOString(), audit.duration) : null,
          },
          {
            what: 'Temporal workflow histories of this request (payloads encrypted with AES-256-GCM)',
            legalBasis: 'the Temporal namespace’s retention period, after which Temporal deletes them',
            until: null,
          },
        ],
        verification: {
          performed: `full scan of every table of the subject's studies after the rewrite (${after.read.objects} objects, ${after.read.bytes} bytes read), and a lookup in the subject index`,
          passed: survivors.length === 0,
          details: [
            survivors.length === 0
              ? 'no erased place holds the subject’s tokens, and the index names none'
              : `still holding the subject: ${[...new Set(survivors.map(itemIdOf))].join(', ')}`,
          ],
        },
      };
      const result = await steps.once('deleting older versions and certifying', () =>
        eraseUnits('subject', {
          jurisdiction: ctx.jurisdiction,
          label: `erasure request ${auth.requestId}`,
          principal: auth.principal,
          requestedBy: auth.eSignature,
          approvedBy: status.approval ? [status.approval] : [],
          requestId: auth.requestId,
          bundled: false,
          details: { items: items.length, erased: items.length - kept, kept },
          units: [
            {
              unitId: `subject/${auth.requestId}`,
              event: 'subject.erased',
              targets: {},
              reason: {
                kind: 'erasure',
                legalBasis: noRight ?? rules.dsr.erasure!.legalBasis,
                detail:
                  items.length === 0
                    ? `erasure request ${auth.requestId}: no data of the subject was found in ${ctx.jurisdiction}`
                    : `erasure request ${auth.requestId}: ${items.length - kept} places erased, ${kept} kept`,
              },
              note: noRight ?? 'the subject’s erasure request, approved by the DPO',
              details: {
                rowsRemoved: rewrites.reduce((n, r) => n + r.rowsBefore - r.rowsAfter, 0),
                ...(uploadsRewritten.length > 0
                  ? {
                      uploadsRewritten: uploadsRewritten.length,
                      uploadRowsRemoved: uploadsRewritten.reduce((n, u) => n + u.rewritten.rowsRemoved, 0),
                    }
                  : {}),
                ...(rerunOutputs.size > 0 ? { derivedMadeAgain: rerunOutputs.size } : {}),
              },
              objects: {
                targets: [
                  ...uploadsErased.map((u) => ({ bucket: u.bucket, prefixes: [u.prefix], bypassGovernance: false })),
                  ...uploadsRewritten.map(({ place, rewritten }) => ({
                    bucket: place.bucket,
                    prefixes: [place.prefix],
                    bypassGovernance: false,
                    keep: rewritten.keep,
                  })),
                  ...derivedDeleted.flatMap((d) => datasetErasureTargets(rules.buckets, d.datasetId).targets),
                  ...exportsErased.flatMap((x) => [
                    { bucket: x.bucket, prefixes: [x.prefix], bypassGovernance: true },
                    {
                      bucket: rules.buckets.catalog,
                      prefixes: [exportRecordKey(x.requestId)],
                      bypassGovernance: false,
                    },
                  ]),
                  ...rewrites.map((r) => {
                    const place = tableOf(r);
                    return {
                      bucket: place.bucket,
                      prefixes: [place.key],
                      bypassGovernance: true,
                      keep: [{ key: place.key, versionId: r.after.versionId }],
                    };
                  }),
                ],
                known: [
                  ...uploadsRewritten.flatMap(({ place, rewritten }) =>
                    rewritten.files.map((f) => ({
                      bucket: place.bucket,
                      key: f.key,
                      versionId: f.before.versionId,
                      sha256: f.before.sha256,
                    })),
                  ),
                  ...rewrites.map((r) => {
                    const place = tableOf(r);
                    return {
                      bucket: place.bucket,
                      key: place.key,
                      versionId: r.before.versionId,
                      sha256: r.before.sha256,
                    };
                  }),
                ],
              },
              subjectRequest: record,
            },
          ],
        }),
      );
      const certified = result.erased[0];
      Object.assign(status.outcome, {
        ...tokenCounts(found),
        items: items.length,
        erased: items.length - kept,
        kept,
        rowsRemoved: rewrites.reduce((n, r) => n + r.rowsBefore - r.rowsAfter, 0),
        uploadRowsRemoved: uploadsRewritten.reduce((n, u) => n + u.rewritten.rowsRemoved, 0),
        derivedMadeAgain: rerunOutputs.size,
        olderVersionsDeleted: certified?.versions ?? 0,
        verified: (certified?.verified ?? false) && record.verification.passed,
        certificateId: certified?.certificateId ?? null,
      });
      if (!certified) {
        throw nonRetryable(
          ErrorType.InvalidInput,
          `the erasure was not certified: ${result.failed[0]?.reason ?? 'no outcome'}`,
        );
      }
    },
  };
}

/** A derived output's basis, with what re-running it came to. */
function withRerun(basis: string, rerun: DerivedRerun | undefined): string {
  if (!rerun) return basis;
  return rerun.rerun
    ? `${basis}; made again without the subject from its run documentation as dataset ${rerun.datasetId} (job ${rerun.jobId}, run documentation s3://${rerun.documentRef.bucket}/${rerun.documentRef.key})`
    : `${basis}; not made again: ${rerun.reason}`;
}

/** The work of a request of this kind. */
export function requestWork(kind: SubjectRequestKind, ctx: WorkContext): RequestWork {
  switch (kind) {
    case 'restriction':
      return restrictionWork(ctx);
    case 'access':
      return accessWork(ctx);
    case 'erasure':
      return erasureWork(ctx);
  }
}
