import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  patched,
  proxyActivities,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { ActivityOptions } from '@temporalio/common';
import type { createPreprocessActivities } from '../activities/preprocess';
import type { createPreprocessCatalogActivities } from '../activities/preprocess-catalog';
import { ErrorType, jurisdictionOfDatasetId, nonRetryable, preprocessTaskQueue } from '../contracts';
import { getJurisdiction } from '../jurisdictions';
import { compareRuns, reproduced } from '../lib/preprocess/compare';
import { PipelineError, resolvePipeline } from '../lib/preprocess/pipeline';
import { datasetObjectPrefix } from '../lib/storage/layout';
import type { Principal } from '../schemas/common';
import {
  PreprocessParamsSchema,
  PreprocessVerifyParamsSchema,
  type PipelineSpec,
  type PreprocessJobResult,
  type RunPreprocessInput,
  type RunPreprocessResult,
} from '../schemas/preprocess';
import type { SignedWorkflowInput } from '../schemas/request';
import { recordAudit, type AuditDraft } from './audit';
import { authorize } from './authorize';
import { setPhase } from './progress';

const catalog = proxyActivities<ReturnType<typeof createPreprocessCatalogActivities>>({
  startToCloseTimeout: '2 minutes',
  retry: {
    maximumAttempts: 10,
    initialInterval: '1s',
    maximumInterval: '30s',
    nonRetryableErrorTypes: [ErrorType.DatasetNotFound, ErrorType.InvalidInput, ErrorType.JurisdictionViolation],
  },
});

const heavyOptions: ActivityOptions = {
  startToCloseTimeout: '24 hours',
  // Nobody polling the queue is not a failure: the job waits for a worker of its jurisdiction (the CLI says so).
  scheduleToStartTimeout: '7 days',
  // Heartbeats come every 2 s: a dead worker is noticed within this, and the job resumes on another of the jurisdiction.
  heartbeatTimeout: '30 seconds',
  // Cancelling waits for the worker to stop the pipeline and wipe its scratch.
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: {
    maximumAttempts: 5,
    initialInterval: '5s',
    maximumInterval: '2 minutes',
    nonRetryableErrorTypes: [
      ErrorType.PreprocessFailed,
      ErrorType.StorageDenied,
      ErrorType.JurisdictionViolation,
      ErrorType.InvalidInput,
    ],
  },
};

function heavy(jurisdiction: string, gpu: boolean) {
  return proxyActivities<ReturnType<typeof createPreprocessActivities>>({
    ...heavyOptions,
    taskQueue: preprocessTaskQueue(jurisdiction, gpu),
  });
}

/** The object version a job reads, as the audit trail names it. */
function objectRef(i: { bucket: string; key: string; versionId: string | null; sha256: string }) {
  return { bucket: i.bucket, key: i.key, versionId: i.versionId, sha256: i.sha256 };
}

/** Audits a run's start: the object versions it reads, and how it runs them. */
async function auditStarted(
  jurisdiction: string,
  principal: Principal,
  targets: AuditDraft['targets'],
  inputs: readonly { bucket: string; key: string; versionId: string | null; sha256: string }[],
  details: Record<string, string | number | boolean>,
): Promise<void> {
  await recordAudit(jurisdiction, principal, [
    {
      action: 'preprocess.started',
      outcome: 'success',
      targets: { ...targets, objects: inputs.map(objectRef) },
      details,
    },
  ]);
}

/** The message of a non-retryable failure at the root of an activity's failure (a refusal), else undefined. */
function refusalOf(error: unknown): string | undefined {
  let cause = error;
  while (cause instanceof Error && cause.cause instanceof Error) cause = cause.cause;
  return cause instanceof ApplicationFailure && cause.nonRetryable ? cause.message : undefined;
}

/** The innermost message of a failure's cause chain (the activity's own failure, not "Activity task failed"). */
function messageOf(error: unknown): string {
  let current = error;
  while (current instanceof Error && current.cause instanceof Error) current = current.cause;
  return current instanceof Error ? current.message : String(current);
}

/** Runs the heavy activity; a cancellation or failure is audited before the workflow ends with it. */
async function runAudited(
  jurisdiction: string,
  principal: Principal,
  targets: AuditDraft['targets'],
  gpu: boolean,
  input: RunPreprocessInput,
): Promise<RunPreprocessResult> {
  try {
    return await heavy(jurisdiction, gpu).runPreprocessActivity(input);
  } catch (error) {
    await CancellationScope.nonCancellable(() =>
      recordAudit(jurisdiction, principal, [
        isCancellation(error)
          ? { action: 'preprocess.cancelled', outcome: 'failure', targets, reason: 'cancelled; the scratch was wiped' }
          : { action: 'preprocess.failed', outcome: 'failure', targets, reason: messageOf(error).slice(0, 1000) },
      ]),
    );
    throw error;
  }
}

/**
 * Records a finished run's output datasets (catalog and subject index) and audits what it wrote: each output object,
 * the run documentation, each dataset recorded, the scratch wiped, and the run's completion.
 */
export async function recordJobOutputs(
  jurisdiction: string,
  principal: Principal,
  targets: AuditDraft['targets'],
  result: RunPreprocessResult,
  pipeline: string,
  details: Record<string, string> = {},
): Promise<string[]> {
  const { document } = result;
  const documentRef = result.documentRef!;
  setPhase('recording the output datasets');
  const { created } = await catalog.recordPreprocessOutputsActivity({ jurisdiction, document, documentRef });
  await recordAudit(jurisdiction, principal, [
    ...document.outputs.map((o): AuditDraft => ({
      action: 'object.written',
      outcome: 'success',
      targets: {
        ...targets,
        datasetId: o.datasetId,
        objects: [{ bucket: o.bucket, key: o.key, versionId: o.versionId, sha256: o.sha256, bytes: o.bytes }],
      },
    })),
    {
      action: 'object.written',
      outcome: 'success',
      targets: { ...targets, objects: [documentRef, ...result.copies] },
      details: { document: 'run documentation' },
    },
    ...created.map((datasetId): AuditDraft => ({
      action: 'dataset.recorded',
      outcome: 'success',
      targets: { ...targets, datasetId },
      details: {
        dataClass: 'preprocessing-output',
        derivedFrom: document.outputs.find((o) => o.datasetId === datasetId)!.fromDatasetId,
      },
    })),
    {
      action: 'scratch.wiped',
      outcome: 'success',
      targets,
      details: { files: document.scratch.files, worker: document.infrastructure.worker.identity },
    },
    {
      action: 'preprocess.completed',
      outcome: 'success',
      targets: { ...targets, objects: [documentRef] },
      details: {
        pipeline,
        outputs: document.outputs.map((o) => o.datasetId).join(','),
        subjectsExcluded: document.consent.subjects,
        rowsExcluded: document.consent.rows,
        ...details,
      },
    },
  ]);
  return created;
}

/**
 * A preprocessing job: a pipeline over datasets of one jurisdiction, run on that jurisdiction's preprocess workers,
 * its outputs new datasets of the same jurisdiction, documented for GxP. The first confinement layer: inputs and
 * outputs outside the jurisdiction are refused here, before anything is dispatched.
 */
export async function preprocessJobWorkflow(raw: SignedWorkflowInput): Promise<PreprocessJobResult> {
  const auth = await authorize(raw, 'preprocess.run', PreprocessParamsSchema);
  const { params, principal, jurisdiction, requestId } = auth;
  const { workflowId, runId, startTime } = workflowInfo();
  const jobId = workflowId;
  const targets = { requestId };

  const foreign = params.datasetIds.filter((id) => jurisdictionOfDatasetId(id) !== jurisdiction);
  if (foreign.length > 0) {
    const where = foreign.map((id) => `${id} (${jurisdictionOfDatasetId(id) ?? 'unknown jurisdiction'})`).join(', ');
    const reason = `a job in ${jurisdiction} reads and writes only ${jurisdiction} data; refused before dispatch: ${where}. Run the job in the datasets' own jurisdiction.`;
    await recordAudit(jurisdiction, principal, [
      { action: 'preprocess.refused', outcome: 'denied', targets, reason, details: { foreign: foreign.join(',') } },
    ]);
    throw nonRetryable(ErrorType.JurisdictionViolation, reason);
  }
  let spec: PipelineSpec;
  try {
    spec = resolvePipeline(params.pipeline.ref, params.pipeline.document, params.parameters);
  } catch (error) {
    if (!(error instanceof PipelineError)) throw error;
    await recordAudit(jurisdiction, principal, [
      { action: 'preprocess.failed', outcome: 'failure', targets, reason: error.message },
    ]);
    throw nonRetryable(ErrorType.InvalidInput, error.message);
  }
  const gpu = params.gpu || spec.gpu;

  setPhase('reading the input datasets');
  const prepared = await catalog
    .preparePreprocessActivity({
      jurisdiction,
      datasetIds: params.datasetIds,
      ...(spec.table ? { table: spec.table } : {}),
      at: startTime.toISOString(),
    })
    .catch(async (error: unknown) => {
      // Refused before dispatch (an open high-risk deviation, an unknown dataset or table): audited as such.
      const reason = refusalOf(error);
      if (reason !== undefined && patched('audit-refused-preparation')) {
        await recordAudit(jurisdiction, principal, [
          { action: 'preprocess.refused', outcome: 'denied', targets, reason },
        ]);
      }
      throw error;
    });
  const buckets = getJurisdiction(jurisdiction).buckets;
  const outputs = prepared.inputs.map((i) => {
    const datasetId = `ds-${jurisdiction}-${uuid4().replace(/-/g, '').slice(0, 24)}`;
    return {
      fromDatasetId: i.datasetId,
      datasetId,
      bucket: buckets.curated,
      prefix: datasetObjectPrefix(datasetId),
    };
  });
  const outside = [...prepared.inputs, ...outputs].filter((o) => !Object.values(buckets).includes(o.bucket));
  if (outside.length > 0) {
    const reason = `a job in ${jurisdiction} reads and writes only ${jurisdiction} buckets; refused before dispatch: ${outside.map((o) => o.bucket).join(', ')}`;
    await recordAudit(jurisdiction, principal, [{ action: 'preprocess.refused', outcome: 'denied', targets, reason }]);
    throw nonRetryable(ErrorType.JurisdictionViolation, reason);
  }
  const queue = preprocessTaskQueue(jurisdiction, gpu);
  await auditStarted(jurisdiction, principal, targets, prepared.inputs, {
    pipeline: `${spec.name}@${spec.version}`,
    executor: spec.executor,
    codeSha256: params.pipeline.codeSha256,
    seed: params.seed,
    taskQueue: queue,
    inputs: params.datasetIds.join(','),
  });

  setPhase(`running on ${queue}`, { inputs: prepared.inputs.length });
  const result = await runAudited(jurisdiction, principal, targets, gpu, {
    jobId,
    jurisdiction,
    verify: false,
    baseline: prepared.baseline ?? null,
    pipeline: params.pipeline,
    parameters: params.parameters,
    seed: params.seed,
    inputs: prepared.inputs,
    outputs,
    asOf: startTime.toISOString().slice(0, 10),
    lock: prepared.lock,
    tags: { jurisdiction, 'data-class': 'preprocessing-output', pipeline: `${spec.name}@${spec.version}` },
    job: { workflowId, runId, requestId, requestedBy: principal, startedAt: startTime.toISOString() },
  });
  const { document } = result;
  const documentRef = result.documentRef!;

  await recordJobOutputs(jurisdiction, principal, targets, result, `${spec.name}@${spec.version}`);
  return {
    jobId,
    outputDatasets: [...new Set(document.outputs.map((o) => o.datasetId))],
    documentRef,
    document,
    verification: null,
  };
}

/**
 * Process validation (GxP): re-runs a job from its run documentation (the same object versions, pipeline code,
 * parameters unless others are given, and seed) in the worker's scratch, writes nothing, and compares field by field.
 */
export async function verifyPreprocessRunWorkflow(raw: SignedWorkflowInput): Promise<PreprocessJobResult> {
  const auth = await authorize(raw, 'preprocess.verify', PreprocessVerifyParamsSchema);
  const { params, principal, jurisdiction, requestId } = auth;
  const { workflowId, runId, startTime } = workflowInfo();
  const targets = { requestId };
  setPhase('reading the run documentation');
  const recorded = await catalog.readRunDocumentActivity({ jurisdiction, jobId: params.runWorkflowId });
  const parameters = params.parameters ?? recorded.parameters;
  const gpu = recorded.pipeline.gpu;
  setPhase(`re-running on ${preprocessTaskQueue(jurisdiction, gpu)}`);
  const result = await runAudited(jurisdiction, principal, targets, gpu, {
    jobId: workflowId,
    jurisdiction,
    verify: true,
    pipeline: {
      ref: recorded.pipeline.ref,
      document: recorded.pipeline.document,
      dir: recorded.pipeline.dir,
      bundled: recorded.pipeline.bundled,
      codeSha256: recorded.pipeline.codeSha256,
      files: recorded.pipeline.files,
    },
    parameters,
    seed: recorded.seed,
    inputs: recorded.inputs.map(({ rowsIn: _in, rowsExcluded: _out, ...i }) => i),
    outputs: recorded.outputs.map((o) => ({
      fromDatasetId: o.fromDatasetId,
      datasetId: o.datasetId,
      bucket: o.bucket,
      prefix: o.key.slice(0, o.key.lastIndexOf('/') + 1),
    })),
    asOf: startTime.toISOString().slice(0, 10),
    lock: null,
    tags: {},
    job: { workflowId, runId, requestId, requestedBy: principal, startedAt: startTime.toISOString() },
  });
  const differences = compareRuns(recorded, result.document);
  const ok = reproduced(differences);
  await recordAudit(jurisdiction, principal, [
    {
      action: 'preprocess.verified',
      outcome: ok ? 'success' : 'failure',
      targets: {
        ...targets,
        objects: recorded.outputs.map(objectRef),
      },
      details: {
        run: params.runWorkflowId,
        reproduced: ok,
        differences: differences
          .map((d) => d.field)
          .join(',')
          .slice(0, 900),
      },
    },
  ]);
  return {
    jobId: workflowId,
    outputDatasets: [],
    documentRef: null,
    document: result.document,
    verification: { of: params.runWorkflowId, reproduced: ok, differences },
  };
}

/** What re-running a derived output for an erasure came to: a new dataset, or why it was not re-run. */
export type DerivedRerun =
  | { rerun: true; jobId: string; datasetId: string; documentRef: { bucket: string; key: string } }
  | { rerun: false; reason: string };

/**
 * Makes a derived output again from its run documentation (the same pipeline code, parameters and seed) on the input
 * dataset as it is now, for an erasure: staging leaves the erased subject out (tombstoned, counted as `erased`), so
 * the new dataset holds nothing of them; the old one is then deleted by the erasure. A GPU run is not re-run (the
 * erasure does not wait for a GPU worker), nor is one whose input is gone or refused (an open high-risk deviation):
 * the reason is returned, for the certificate, and the output is deleted only.
 */
export async function rerunDerivedOutput(
  jurisdiction: string,
  principal: Principal,
  requestId: string,
  derived: { datasetId: string; jobId: string; fromDatasetId: string },
): Promise<DerivedRerun> {
  try {
    const recorded = await catalog.readRunDocumentActivity({ jurisdiction, jobId: derived.jobId });
    const input = recorded.inputs.find((i) => i.datasetId === derived.fromDatasetId);
    if (recorded.pipeline.gpu) {
      return { rerun: false, reason: `job ${derived.jobId} ran on a GPU; run it again with steward preprocess run` };
    }
    if (!input) return { rerun: false, reason: `job ${derived.jobId} did not read ${derived.fromDatasetId}` };
    const { workflowId, runId } = workflowInfo();
    const startedAt = new Date().toISOString();
    const prepared = await catalog.preparePreprocessActivity({
      jurisdiction,
      datasetIds: [derived.fromDatasetId],
      table: input.table,
      at: startedAt,
    });
    const datasetId = `ds-${jurisdiction}-${uuid4().replace(/-/g, '').slice(0, 24)}`;
    const jobId = `rerun-${derived.datasetId}`;
    const pipeline = `${recorded.pipeline.name}@${recorded.pipeline.version}`;
    const targets = { requestId, datasetId: derived.datasetId };
    const { pipeline: p } = recorded;
    await auditStarted(jurisdiction, principal, targets, prepared.inputs, {
      pipeline,
      executor: p.executor,
      codeSha256: p.codeSha256,
      seed: recorded.seed,
      rerunOf: derived.datasetId,
      erasureRequest: requestId,
    });
    const result = await runAudited(jurisdiction, principal, targets, false, {
      jobId,
      jurisdiction,
      verify: false,
      baseline: prepared.baseline ?? null,
      pipeline: {
        ref: p.ref,
        document: p.document,
        dir: p.dir,
        bundled: p.bundled,
        codeSha256: p.codeSha256,
        files: p.files,
      },
      parameters: recorded.parameters,
      seed: recorded.seed,
      inputs: prepared.inputs,
      outputs: [
        {
          fromDatasetId: derived.fromDatasetId,
          datasetId,
          bucket: getJurisdiction(jurisdiction).buckets.curated,
          prefix: datasetObjectPrefix(datasetId),
        },
      ],
      asOf: startedAt.slice(0, 10),
      lock: prepared.lock,
      tags: { jurisdiction, 'data-class': 'preprocessing-output', pipeline },
      job: { workflowId, runId, requestId, requestedBy: principal, startedAt },
    });
    await recordJobOutputs(jurisdiction, principal, targets, result, pipeline, {
      rerunOf: derived.datasetId,
      erasureRequest: requestId,
    });
    return { rerun: true, jobId, datasetId, documentRef: result.documentRef! };
  } catch (error) {
    const reason = refusalOf(error);
    if (reason === undefined) throw error;
    return { rerun: false, reason };
  }
}
