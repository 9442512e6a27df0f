import { proxyActivities } from '@temporalio/workflow';
import type { createSubjectRightsActivities } from '../activities/subject-rights';
import { curationTaskQueue } from '../contracts';
import type { Principal } from '../schemas/common';
import type {
  DecisionParams,
  RequestStep,
  SubjectRequestKind,
  SubjectRequestParams,
  SubjectRequestState,
  SubjectRequestStatus,
  SubjectTokens,
} from '../schemas/subject-request';
import type { AuditDraft } from './audit';
import type { Authorized } from './authorize';
import { changeCatalog } from './catalog';
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
    heartbeatTimeout: '2 minutes',
    // Storage outages clear within a few tries; after that the request waits for the DPO's retry.
    retry: { maximumAttempts: 5, initialInterval: '2s', maximumInterval: '30 seconds' },
    taskQueue: curationTaskQueue(jurisdiction),
  });
}

/** What a request's work needs from its workflow. */
export interface WorkContext {
  jurisdiction: string;
  auth: Authorized<SubjectRequestParams>;
  status: SubjectRequestStatus;
  step: (name: string, by: Principal | null, extra?: Partial<RequestStep>) => void;
  audit: (drafts: AuditDraft[], principal?: Principal | null) => Promise<unknown>;
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

/** The work of a request of this kind. */
export function requestWork(kind: SubjectRequestKind, ctx: WorkContext): RequestWork {
  switch (kind) {
    case 'restriction':
      return restrictionWork(ctx);
    case 'access':
      return accessWork(ctx);
    case 'erasure':
      throw new Error(`no work for ${kind} requests`);
  }
}
