import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { createIngestActivities } from '../activities/ingest';
import { datasetIdFor, ErrorType, ingestProgressQuery } from '../contracts';
import {
  IngestPackageInputSchema,
  type IngestPackageInput,
  type IngestPackageResult,
  type IngestProgress,
  type PackageProblem,
} from '../schemas/ingest';
import { parseInput } from '../schemas/parse';
import { requireRole } from './authorize';

type Activities = ReturnType<typeof createIngestActivities>;

const quick = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  // Catalog reads and writes: transient storage errors clear up within a few tries.
  retry: { maximumAttempts: 10, initialInterval: '1s', maximumInterval: '30s' },
});

const heavy = proxyActivities<Activities>({
  startToCloseTimeout: '6 hours',
  // Heartbeats come every few seconds; a worker that dies is noticed within this, and the activity retried.
  heartbeatTimeout: '30 seconds',
  // Streaming whole packages: retry storage or worker failures, but give up on a package that keeps failing.
  retry: {
    maximumAttempts: 5,
    initialInterval: '5s',
    maximumInterval: '5 minutes',
    nonRetryableErrorTypes: [ErrorType.PackageRejected, ErrorType.KeyUnavailable, ErrorType.JurisdictionViolation],
  },
});

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

/**
 * Ingests one data package into its jurisdiction: verify every file's checksum, validate rows, exclude subjects
 * without consent, pseudonymize, write Parquet to curated and record the dataset. A rejected package is moved to
 * quarantine with its reasons and the workflow fails with the rejection.
 */
export async function ingestPackageWorkflow(raw: IngestPackageInput): Promise<IngestPackageResult> {
  const input = parseInput(IngestPackageInputSchema, raw, 'ingestPackageWorkflow');
  const datasetId = datasetIdFor(input.jurisdiction, input.packageId);
  const progress: IngestProgress = { phase: 'verifying', datasetId };
  setHandler(ingestProgressQuery, () => progress);
  const { workflowId, runId } = workflowInfo();
  requireRole(input.submittedBy, 'ingest');

  const existing = await quick.findDatasetActivity({ datasetId });
  if (existing) {
    progress.phase = 'done';
    return { datasetId, outcome: 'already-curated', record: existing };
  }

  try {
    const verified = await heavy.verifyPackageActivity(input);
    progress.phase = 'curating';
    const asOf = new Date().toISOString().slice(0, 10);
    const curated = await heavy.curatePackageActivity({
      packageId: input.packageId,
      datasetId,
      jurisdiction: input.jurisdiction,
      landing: input.landing,
      metadata: verified.metadata,
      files: verified.files,
      asOf,
    });
    progress.phase = 'recording';
    const { record, created } = await quick.recordDatasetActivity({
      datasetId,
      ingest: input,
      verified,
      curated,
      workflowId,
      runId,
      createdAt: new Date().toISOString(),
    });
    progress.phase = 'done';
    return { datasetId, outcome: created ? 'curated' : 'already-curated', record };
  } catch (error) {
    const problems = rejectionOf(error);
    if (!problems) {
      // Cancelled, or failed for good: remove what curation may have written, unless the dataset was recorded. The
      // package stays in landing, for a new submission.
      progress.phase = 'discarding';
      await CancellationScope.nonCancellable(() =>
        quick.discardCurationActivity({ datasetId, studyId: input.metadata.studyId }),
      );
      progress.phase = 'failed';
      throw error;
    }
    progress.phase = 'quarantining';
    await CancellationScope.nonCancellable(() =>
      quick.quarantinePackageActivity({
        packageId: input.packageId,
        landing: input.landing,
        problems,
        workflowId,
        runId,
        rejectedAt: new Date().toISOString(),
      }),
    );
    progress.phase = 'rejected';
    throw error;
  }
}
