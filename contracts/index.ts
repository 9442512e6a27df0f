/**
 * The contracts every part of Steward shares: task queues, workflow ids, queries, signals and updates, search attributes
 * and failure types. Workflows, activities, workers, the CLI and tests import them from here, never from each other.
 * Pure and deterministic: safe inside workflows.
 */
import { ApplicationFailure, defineSearchAttributeKey } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { AuditTrailHead } from '../schemas/audit';
import type { IngestProgress } from '../schemas/ingest';
import type { InternalMessage } from '../schemas/message';
import type { ChangeRecord, DeviationRecord, QaSignInput, QualificationStatus } from '../schemas/qualification';
import type { SweepProgress } from '../schemas/retention';
import type { ReplicationStatus } from '../schemas/replication';
import type { DecisionInput, SubjectRequestStatus } from '../schemas/subject-request';

/** Task queue of a jurisdiction's worker. Polled only by workers started for that jurisdiction. */
export function ingestTaskQueue(jurisdiction: string): string {
  return `ingest.${jurisdiction}`;
}

/**
 * Task queue of a jurisdiction's long, memory-bound work (verifying and curating packages, re-keying datasets,
 * scanning data), kept apart so it never holds up the short activities (request checks, audit sealing, catalog writes).
 */
export function curationTaskQueue(jurisdiction: string): string {
  return `curation.${jurisdiction}`;
}

/**
 * Task queue of a jurisdiction's preprocessing jobs, on CPU (`preprocess.<j>`) or GPU (`preprocess-gpu.<j>`): polled
 * only by preprocess workers started for that jurisdiction, with its storage credentials.
 */
export function preprocessTaskQueue(jurisdiction: string, gpu = false): string {
  return `${gpu ? 'preprocess-gpu' : 'preprocess'}.${jurisdiction}`;
}

/**
 * Task queue of a jurisdiction's storage inspector: the process holding its storage administrator's credentials, which
 * answers one activity, reading the buckets' versioning, Object Lock and policies for the installation qualification.
 */
export function inspectTaskQueue(jurisdiction: string): string {
  return `inspect.${jurisdiction}`;
}

/** A preprocessing job (a run, or the re-run that verifies one) per request. */
export function preprocessJobWorkflowId(jurisdiction: string, requestId: string): string {
  return `preprocess-${jurisdiction}-${requestId}`;
}

/** Same package (same manifest and metadata digest) → same workflow id → one dataset. */
export function ingestWorkflowId(jurisdiction: string, packageId: string): string {
  return `ingest-${jurisdiction}-${packageId}`;
}

export function datasetIdFor(jurisdiction: string, packageId: string): string {
  return `ds-${jurisdiction}-${packageId}`;
}

/** The jurisdiction a dataset id names (`ds-<jurisdiction>-<24 hex digits>`), or undefined for anything else. */
export function jurisdictionOfDatasetId(datasetId: string): string | undefined {
  return /^ds-([a-z]{2,8})-[0-9a-f]{24}$/.exec(datasetId)?.[1];
}

/** The same consent file for the same study is one import. */
export function consentImportWorkflowId(jurisdiction: string, studyId: string, sha256: string): string {
  return `consent-import-${jurisdiction}-${studyId}-${sha256.slice(0, 24)}`;
}

/** Requests a person makes carry a request id: a retried command finds the run its first attempt started. */
export function keyRotationWorkflowId(jurisdiction: string, studyId: string, requestId: string): string {
  return `keys-rotate-${jurisdiction}-${studyId}-${requestId}`;
}

export function consentWithdrawalWorkflowId(jurisdiction: string, studyId: string, requestId: string): string {
  return `consent-withdraw-${jurisdiction}-${studyId}-${requestId}`;
}

export function reidentifyWorkflowId(jurisdiction: string, studyId: string, requestId: string): string {
  return `reidentify-${jurisdiction}-${studyId}-${requestId}`;
}

/** One migration of a dataset at a time: a request while one runs joins it. */
export function rePseudonymizeWorkflowId(datasetId: string): string {
  return `repseudonymize-${datasetId}`;
}

/**
 * The single writer of one mutable catalog object (a dataset record, a study's vault): changes are applied one at a
 * time, so none is lost to a concurrent one.
 */
export function catalogWriterWorkflowId(jurisdiction: string, target: string): string {
  return `catalog-writer-${jurisdiction}-${target.replace('/', '-')}`;
}

/** The single writer of a jurisdiction's audit trail: orders, chains and seals every event of the jurisdiction. */
export function auditTrailWorkflowId(jurisdiction: string): string {
  return `audit-trail-${jurisdiction}`;
}

export function keyDestructionWorkflowId(jurisdiction: string, studyId: string, requestId: string): string {
  return `keys-destroy-${jurisdiction}-${studyId}-${requestId}`;
}

export function auditQueryWorkflowId(jurisdiction: string, requestId: string): string {
  return `audit-query-${jurisdiction}-${requestId}`;
}

export function legalHoldWorkflowId(jurisdiction: string, requestId: string): string {
  return `legal-hold-${jurisdiction}-${requestId}`;
}

export function trialEndWorkflowId(jurisdiction: string, studyId: string, requestId: string): string {
  return `trial-end-${jurisdiction}-${studyId}-${requestId}`;
}

/** One qualification run (`steward qualify`) per request. */
export function qualificationWorkflowId(jurisdiction: string, requestId: string): string {
  return `qualify-${jurisdiction}-${requestId}`;
}

/** One baseline recording (`steward baseline record`) per request. */
export function baselineWorkflowId(jurisdiction: string, requestId: string): string {
  return `baseline-${jurisdiction}-${requestId}`;
}

/** The schedule of a jurisdiction's drift checks, and the id of the runs it starts. */
export function driftScheduleId(jurisdiction: string): string {
  return `drift-${jurisdiction}`;
}

/** A drift check asked for by a signed request. */
export function driftCheckWorkflowId(jurisdiction: string, requestId: string): string {
  return `drift-${jurisdiction}-${requestId}`;
}

/** A deviation: one per finding while it is open (`<key>` is a digest of the finding). */
export function deviationWorkflowId(jurisdiction: string, key: string): string {
  return `deviation-${jurisdiction}-${key}`;
}

/** The scratch study of an operational qualification: named by the run's request id, deleted when the run ends. */
export function scratchStudyId(requestId: string): string {
  return `OQ-${requestId
    .replace(/[^A-Za-z0-9]/g, '')
    .slice(0, 16)
    .toUpperCase()}`;
}

/** A change to a controlled file, one per proposal. */
export function changeWorkflowId(jurisdiction: string, requestId: string): string {
  return `change-${jurisdiction}-${requestId}`;
}

/** The one workflow that replicates a jurisdiction's primary storage site to its disaster-recovery site. */
export function replicationWorkflowId(jurisdiction: string): string {
  return `replication-${jurisdiction}`;
}

/** The Temporal Schedule that starts a jurisdiction's retention sweeps (its runs get the time appended to this id). */
export function retentionScheduleId(jurisdiction: string): string {
  return `retention-sweep-${jurisdiction}`;
}

/** A sweep asked for by hand (a scheduled one is named by its schedule). */
export function retentionSweepWorkflowId(jurisdiction: string, requestId: string): string {
  return `retention-sweep-${jurisdiction}-manual-${requestId}`;
}

export function sourceRegistrationWorkflowId(jurisdiction: string, studyId: string, requestId: string): string {
  return `sources-register-${jurisdiction}-${studyId}-${requestId}`;
}

export function scheduleChangeWorkflowId(jurisdiction: string, requestId: string): string {
  return `retention-schedule-${jurisdiction}-${requestId}`;
}

/** A verification or rebuild of a jurisdiction's subject index. */
export function subjectIndexWorkflowId(jurisdiction: string, requestId: string): string {
  return `dsr-index-${jurisdiction}-${requestId}`;
}

/** One workflow per subject request: its id is made from the request id the DPO's filing carries. */
export function subjectRequestWorkflowId(jurisdiction: string, requestId: string): string {
  return `dsr-${jurisdiction}-${requestId}`;
}

/** What any Steward workflow is doing now: a phase in words, since when, and counts where it has some. */
export interface WorkflowProgress {
  phase: string;
  since: string;
  counts: Record<string, number>;
}
export const progressQuery = defineQuery<WorkflowProgress>('progress');

export const ingestProgressQuery = defineQuery<IngestProgress>('ingestProgress');
/** A retention sweep's phase and counts so far. */
export const retentionSweepProgressQuery = defineQuery<SweepProgress>('retentionSweepProgress');

/**
 * To an audit trail: a sealed message whose body is the events to append, in the order given. The trail accepts only
 * messages its jurisdiction's workers (or Steward's own services) sealed; anything else is dropped and audited.
 */
export const appendAuditEventsSignal = defineSignal<[InternalMessage]>('appendAuditEvents');
/** An audit trail seals everything pending and answers with its head once sealed. */
export const flushAuditTrailUpdate = defineUpdate<AuditTrailHead>('flushAuditTrail');
/** A jurisdiction's replication: its passes, the lag, and the last pass (`steward dr status`). */
export const replicationStatusQuery = defineQuery<ReplicationStatus>('replicationStatus');
/** Asks a jurisdiction's replication for a pass now rather than after its idle wait (an ingestion waiting for it). */
export const replicationPassSignal = defineSignal('replicationPass');

/** An audit trail's head and how many events wait to be sealed. */
export const auditTrailStatusQuery = defineQuery<AuditTrailHead & { pending: number }>('auditTrailStatus');

/**
 * To a catalog writer: a sealed `catalog.change` message; the writer applies it, then signals the outcome to the
 * sender. A message that is not sealed by the jurisdiction's workers, or is a replay, is dropped and audited.
 */
export const applyCatalogMutationSignal = defineSignal<[InternalMessage]>('applyCatalogMutation');
/** A catalog writer's counts: changes applied since it started (across its continue-as-new runs), and queued. */
export const catalogWriterStatusQuery = defineQuery<{ applied: number; queued: number }>('catalogWriterStatus');
/** From a catalog writer: the outcome of a change, a sealed `catalog.reply` message (the receiver checks the seal). */
export const catalogMutationDoneSignal = defineSignal<[InternalMessage]>('catalogMutationDone');

/** A qualification run's or baseline recording's stage, and the document it holds for QA to sign. */
export const qualificationStatusQuery = defineQuery<QualificationStatus>('qualificationStatus');
/** To a qualification run or baseline recording: QA's signed approval of its document (their CMS signature in it). */
export const qaSignUpdate = defineUpdate<QualificationStatus, [QaSignInput]>('qaSign');
/** A deviation's record as it stands. */
export const deviationStatusQuery = defineQuery<DeviationRecord>('deviationStatus');
/** To a deviation: QA's signed decision (investigated, or closed with a disposition). */
export const deviationDecisionUpdate = defineUpdate<DeviationRecord, [QaSignInput]>('deviationDecision');
/** To an operational qualification: QA's signed report of what the testers' script did in the scratch study. */
export const functionalTestsUpdate = defineUpdate<QualificationStatus, [QaSignInput]>('functionalTests');
/** A change's record as it stands. */
export const changeStatusQuery = defineQuery<ChangeRecord>('changeStatus');
/** To a change: QA's signed decision (approve or reject), by a person other than the proposer. */
export const changeDecisionUpdate = defineUpdate<ChangeRecord, [QaSignInput]>('changeDecision');

/** A subject request's state, steps and deadline (no personal data). */
export const subjectRequestStatusQuery = defineQuery<SubjectRequestStatus>('subjectRequestStatus');
/**
 * To a subject request: a DPO's signed decision (verify identity, approve, reject, extend, lift, cancel, retry). The
 * request's workflow verifies the signature, role and freshness, uses each decision once, and answers with the new
 * status; a refused decision is audited and fails the update, never the request.
 */
export const subjectRequestDecisionUpdate = defineUpdate<SubjectRequestStatus, [DecisionInput]>(
  'subjectRequestDecision',
);

/** Kinds of request, as the `RequestKind` search attribute shows them. */
export const RequestKind = {
  Ingestion: 'ingestion',
  ConsentImport: 'consent-import',
  ConsentWithdrawal: 'consent-withdrawal',
  KeyRotation: 'key-rotation',
  Reidentification: 'reidentify',
  RePseudonymization: 'repseudonymize',
  KeyDestruction: 'key-destruction',
  AuditQuery: 'audit-query',
  LegalHold: 'legal-hold',
  TrialEnd: 'trial-end',
  RetentionSweep: 'retention-sweep',
  ScheduleChange: 'schedule-change',
  Preprocess: 'preprocess',
  PreprocessVerify: 'preprocess-verify',
  SourceRegistration: 'source-registration',
  SubjectAccess: 'dsr-access',
  SubjectErasure: 'dsr-erasure',
  SubjectRestriction: 'dsr-restriction',
  SubjectIndex: 'dsr-index',
  Qualification: 'qualification',
  Baseline: 'baseline',
  DriftCheck: 'drift-check',
  Deviation: 'deviation',
  Change: 'change',
} as const;
export type RequestKind = (typeof RequestKind)[keyof typeof RequestKind];

/** Search attributes on Steward's workflows: ids and kinds only, never personal data. */
export const SEARCH_ATTRIBUTES = {
  jurisdiction: defineSearchAttributeKey('Jurisdiction', 'KEYWORD'),
  studyId: defineSearchAttributeKey('StudyId', 'KEYWORD'),
  datasetId: defineSearchAttributeKey('DatasetId', 'KEYWORD'),
  requestId: defineSearchAttributeKey('RequestId', 'KEYWORD'),
  requestKind: defineSearchAttributeKey('RequestKind', 'KEYWORD'),
  /** A subject request's state (received, pending-approval, …): what `steward dsr list` and the Web UI filter on. */
  requestState: defineSearchAttributeKey('RequestState', 'KEYWORD'),
  /** When a subject request is due; moved by each extension. */
  requestDeadline: defineSearchAttributeKey('RequestDeadline', 'DATETIME'),
} as const;

/** `temporal server start-dev` flags registering every search attribute above (docker-compose lists the same). */
export function searchAttributeFlags(): string[] {
  const types = { KEYWORD: 'Keyword', DATETIME: 'Datetime' } as const;
  return Object.values(SEARCH_ATTRIBUTES).flatMap((key) => ['--search-attribute', `${key.name}=${types[key.type]}`]);
}

/**
 * Types of non-retryable failures: every one Steward raises. The Temporal UI shows the type; the CLI maps some to
 * exit codes.
 */
export const ErrorType = {
  /** A package failed verification or validation; it was moved to quarantine. */
  PackageRejected: 'PackageRejected',
  /** A consent file failed validation; nothing was imported. */
  ConsentImportRejected: 'ConsentImportRejected',
  /** A key is missing, destroyed or cannot be unsealed. */
  KeyUnavailable: 'KeyUnavailable',
  AccessDenied: 'AccessDenied',
  /** A bucket, object or package of another jurisdiction was named. */
  JurisdictionViolation: 'JurisdictionViolation',
  DatasetNotFound: 'DatasetNotFound',
  /** A token has no re-identification vault entry, so it cannot be re-keyed. */
  VaultEntryMissing: 'VaultEntryMissing',
  /** A workflow or activity input failed its schema. */
  InvalidInput: 'InvalidInput',
  /** A stored audit segment differs from the one being sealed under its number: the trail has a second writer. */
  AuditChainConflict: 'AuditChainConflict',
  /** A key version that is still current cannot be destroyed; rotate first. */
  KeyInUse: 'KeyInUse',
  /** A retention change that cannot be made now: a sweep is deleting the dataset, or no such hold is in force. */
  RetentionConflict: 'RetentionConflict',
  /**
   * A message between Steward's workflows (an audit append, a catalog change, saved state) that its receiver refused:
   * not sealed by the jurisdiction's workers, meant for another, or a replay.
   */
  MessageRefused: 'MessageRefused',
  /** A preprocessing pipeline failed on its data (a transform rule, the external command's exit status). */
  PreprocessFailed: 'PreprocessFailed',
  /** Storage refused the worker's credentials (another jurisdiction's bucket, or a missing grant). */
  StorageDenied: 'StorageDenied',
  /** A decision on a subject request that its state does not allow (approving an access request, lifting twice). */
  RequestConflict: 'RequestConflict',
  /** A high-risk deviation from the configuration baseline is open in the jurisdiction: preprocessing waits for QA. */
  DeviationOpen: 'DeviationOpen',
} as const;
export type ErrorType = (typeof ErrorType)[keyof typeof ErrorType];

/** A failure that retrying cannot fix, of one of the types above; `cause` keeps the original error in the chain. */
export function nonRetryable(
  type: ErrorType,
  message: string,
  options: { details?: unknown[]; cause?: Error } = {},
): ApplicationFailure {
  return ApplicationFailure.create({
    type,
    message,
    nonRetryable: true,
    ...(options.details ? { details: options.details } : {}),
    ...(options.cause ? { cause: options.cause } : {}),
  });
}
