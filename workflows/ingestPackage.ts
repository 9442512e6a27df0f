import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  patched,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { ActivityOptions } from '@temporalio/common';
import type { createIngestActivities } from '../activities/ingest';
import type { createReplicationActivities } from '../activities/replication';
import { curationTaskQueue, datasetIdFor, ErrorType, ingestProgressQuery, nonRetryable } from '../contracts';
import type { DatasetRecord } from '../schemas/dataset';
import {
  IngestParamsSchema,
  type CuratePackageResult,
  type IngestPackageInput,
  type IngestPackageResult,
  type IngestProgress,
  type PackageProblem,
} from '../schemas/ingest';
import type { SignedWorkflowInput } from '../schemas/request';
import { recordAudit, type AuditDraft } from './audit';
import { authorize } from './authorize';
import { progressFrom } from './progress';

type Activities = ReturnType<typeof createIngestActivities>;

const quick = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  // Catalog reads and writes: transient storage errors clear up within a few tries.
  retry: { maximumAttempts: 10, initialInterval: '1s', maximumInterval: '30s' },
});

/** Recording the dataset: short, but a worker lost while it runs is noticed by its heartbeats, not after 2 minutes. */
const recording = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: '15 seconds',
  // A catalog write: transient storage errors clear up within a few tries.
  retry: { maximumAttempts: 10, initialInterval: '1s', maximumInterval: '30s' },
});

/**
 * Waiting for the DR site to hold what was stored: as long as replication takes (a DR site down is waited for, or
 * failed over from), heartbeating.
 */
const replicated = proxyActivities<ReturnType<typeof createReplicationActivities>>({
  startToCloseTimeout: '1 day',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1s', maximumInterval: '10s' },
});

/** Long, memory-bound activities: on the jurisdiction's curation queue. */
const heavyOptions: ActivityOptions = {
  startToCloseTimeout: '6 hours',
  // Heartbeats come every few seconds; a worker that dies is noticed within this, and the activity retried.
  heartbeatTimeout: '30 seconds',
  // A cancelled ingestion discards what curation wrote only once curation has stopped: otherwise its uploads could
  // land after the discard, leaving curated objects with no record.
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  // Streaming whole packages: retry storage or worker failures, but give up on a package that keeps failing.
  retry: {
    maximumAttempts: 5,
    initialInterval: '5s',
    maximumInterval: '5 minutes',
    nonRetryableErrorTypes: [ErrorType.PackageRejected, ErrorType.KeyUnavailable, ErrorType.JurisdictionViolation],
  },
};

function rejectionOf(error: unknown): PackageProblem[] | undefined {
  if (
    error instanceof ActivityFailure &&
    error.cause instanceof ApplicationFailure &&
    error.cause.type === ErrorType.PackageRejected
  ) {
    const details = error.cause.details?.[0] as { problems?: PackageProblem[] } | undefined;
    return details?.problems ?? [{ file: '(package)', rule: error.cause.message }];
  }
  return undefined;
}

/** What curation and recording did, as audit events: outputs written, keys used and created, the record. */
function curationEvents(curated: CuratePackageResult, record: DatasetRecord, created: boolean): AuditDraft[] {
  const keyIds = curated.keyVersions.map((v) => `study/${record.jurisdiction}/${record.studyId}/v${v}`);
  return [
    ...curated.keysCreated.map((id): AuditDraft => ({
      action: 'key.created',
      outcome: 'success',
      targets: { keyIds: [id] },
    })),
    { action: 'key.used', outcome: 'success', targets: { keyIds }, details: { purpose: 'pseudonymization' } },
    {
      action: 'package.curated',
      outcome: 'success',
      details: { rowsIn: curated.rows.in, rowsCurated: curated.rows.curated, rowsExcluded: curated.rows.excluded },
    },
    ...curated.outputs.map((o): AuditDraft => ({
      action: 'object.written',
      outcome: 'success',
      targets: {
        objects: [{ bucket: o.bucket, key: o.key, versionId: o.versionId, sha256: o.sha256, bytes: o.bytes }],
      },
      details: { table: o.table },
    })),
    { action: 'dataset.recorded', outcome: 'success', details: { created } },
  ];
}

/**
 * Ingests one data package into its jurisdiction, as a steward's signed request asks: verify every file's checksum,
 * validate rows, exclude subjects without consent, pseudonymize, write Parquet to curated and record the dataset. A
 * rejected package is moved to quarantine with its reasons and the workflow fails with the rejection. Every step is in
 * the jurisdiction's audit trail before the workflow reports it.
 */
export async function ingestPackageWorkflow(raw: SignedWorkflowInput): Promise<IngestPackageResult> {
  // Asked before anything else, in the run's first workflow task: its marker is then where every replay looks for it,
  // whatever local activities (the request's claim) resolve ahead of their recorded workflow task on replay.
  const bothSites = patched('ingestion-at-both-sites');
  const progress: IngestProgress = { phase: 'authorizing', datasetId: '' };
  setHandler(ingestProgressQuery, () => progress);
  progressFrom(() => ({ phase: progress.phase, since: '', counts: {} }));
  const auth = await authorize(raw, 'ingest', IngestParamsSchema);
  const input: IngestPackageInput = { ...auth.params, submittedBy: auth.principal };
  if (input.jurisdiction !== auth.jurisdiction) {
    throw nonRetryable(
      ErrorType.JurisdictionViolation,
      `a package for ${input.jurisdiction} was sent to ${auth.jurisdiction}`,
    );
  }
  const heavy = proxyActivities<Activities>({ ...heavyOptions, taskQueue: curationTaskQueue(input.jurisdiction) });
  const datasetId = datasetIdFor(input.jurisdiction, input.packageId);
  Object.assign(progress, { phase: 'verifying', datasetId });
  const { workflowId, runId } = workflowInfo();
  const targets = { packageId: input.packageId, datasetId, studyId: input.metadata.studyId, requestId: auth.requestId };
  const audit = (drafts: AuditDraft[]) =>
    recordAudit(
      input.jurisdiction,
      auth.principal,
      drafts.map((d) => ({ ...d, targets: { ...targets, ...d.targets } })),
    );
  const submitted: AuditDraft = {
    action: 'package.submitted',
    outcome: 'success',
    targets: { objects: [{ bucket: input.landing.bucket, key: input.landing.prefix }] },
    details: { layout: input.layout, dataClass: input.metadata.dataClass, purpose: input.metadata.purpose },
  };

  // Where there is a DR site, a package is curated only once both sites hold it (verification runs meanwhile), and
  // acknowledged only once both hold what it became: losing the primary then loses nothing acknowledged, and an
  // ingestion the loss interrupts finishes at the DR site after a failover.
  const landed = bothSites ? replicated.awaitReplicatedActivity({ jurisdiction: input.jurisdiction }) : undefined;
  // Awaited before curation; a package rejected before then leaves it to be abandoned with the workflow.
  landed?.catch(() => undefined);
  const existing = await quick.findDatasetActivity({ datasetId });
  if (existing) {
    await audit([{ ...submitted, details: { ...submitted.details, alreadyCurated: true } }]);
    progress.phase = 'done';
    return { datasetId, outcome: 'already-curated', record: existing };
  }

  let submittedRecorded = false;
  let recordingVerified: Promise<void> | undefined;
  try {
    const verified = await heavy.verifyPackageActivity(input);
    await landed;
    progress.phase = 'curating';
    const curatedAt = new Date().toISOString();
    const asOf = curatedAt.slice(0, 10);
    // Curation starts while the verification events are delivered to the trail (both before anything is reported).
    recordingVerified = audit([
      submitted,
      {
        action: 'package.verified',
        outcome: 'success',
        details: { files: verified.files.length, bytes: verified.files.reduce((n, f) => n + f.bytes, 0) },
      },
    ]).then(() => void (submittedRecorded = true));
    const [curated] = await Promise.all([
      heavy.curatePackageActivity({
        packageId: input.packageId,
        datasetId,
        jurisdiction: input.jurisdiction,
        landing: input.landing,
        metadata: verified.metadata,
        files: verified.files,
        asOf,
        curatedAt,
      }),
      recordingVerified,
    ]);
    progress.phase = 'recording';
    const { record, created } = await recording.recordDatasetActivity({
      datasetId,
      ingest: input,
      verified,
      curated,
      workflowId,
      runId,
      // The date retention counts from when its rule counts from curation.
      createdAt: curatedAt,
    });
    await audit(curationEvents(curated, record, created));
    if (bothSites) {
      progress.phase = 'replicating';
      await replicated.awaitReplicatedActivity({ jurisdiction: input.jurisdiction });
    }
    progress.phase = 'done';
    return { datasetId, outcome: created ? 'curated' : 'already-curated', record };
  } catch (error) {
    const problems = rejectionOf(error);
    await CancellationScope.nonCancellable(async () => {
      // Whether the submission is in the trail already decides whether to record it now: wait for that delivery.
      await recordingVerified?.catch(() => undefined);
      if (!problems) {
        // Cancelled, or failed for good: remove what curation may have written, unless the dataset was recorded.
        // The package stays in landing, for a new submission.
        progress.phase = 'discarding';
        const { deleted } = await quick.discardCurationActivity({ datasetId, studyId: input.metadata.studyId });
        await audit([
          ...(submittedRecorded ? [] : [submitted]),
          { action: 'ingestion.discarded', outcome: 'failure', details: { objectVersionsDeleted: deleted } },
        ]);
        progress.phase = 'failed';
        return;
      }
      progress.phase = 'quarantining';
      const quarantine = await quick.quarantinePackageActivity({
        packageId: input.packageId,
        landing: input.landing,
        problems,
        workflowId,
        runId,
        rejectedAt: new Date().toISOString(),
      });
      await audit([
        ...(submittedRecorded ? [] : [submitted]),
        {
          action: 'package.rejected',
          outcome: 'failure',
          details: { problems: problems.length, firstRule: problems[0]?.rule.slice(0, 200) ?? null },
        },
        {
          action: 'package.quarantined',
          outcome: 'success',
          targets: { objects: [{ bucket: quarantine.bucket, key: quarantine.prefix }] },
        },
      ]);
      progress.phase = 'rejected';
    });
    throw error;
  }
}
