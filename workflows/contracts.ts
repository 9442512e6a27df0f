import { defineSearchAttributeKey } from '@temporalio/common';
import { defineQuery } from '@temporalio/workflow';
import type { IngestProgress } from '../schemas/workflows';

/** Task queue for a jurisdiction's ingestion workers. Polled only by workers started for that jurisdiction. */
export function ingestTaskQueue(jurisdiction: string): string {
  return `ingest.${jurisdiction}`;
}

/** Same package (same manifest and metadata digest) → same workflow id → one dataset. */
export function ingestWorkflowId(jurisdiction: string, packageId: string): string {
  return `ingest-${jurisdiction}-${packageId}`;
}

export function datasetIdFor(jurisdiction: string, packageId: string): string {
  return `ds-${jurisdiction}-${packageId}`;
}

export function consentImportWorkflowId(jurisdiction: string, studyId: string, sha256: string): string {
  return `consent-import-${jurisdiction}-${studyId}-${sha256.slice(0, 24)}`;
}

export function keyRotationWorkflowId(jurisdiction: string, studyId: string, requestId: string): string {
  return `keys-rotate-${jurisdiction}-${studyId}-${requestId}`;
}

export function consentWithdrawalWorkflowId(jurisdiction: string, studyId: string, requestId: string): string {
  return `consent-withdraw-${jurisdiction}-${studyId}-${requestId}`;
}

export const ingestProgressQuery = defineQuery<IngestProgress>('ingestProgress');

export const SEARCH_ATTRIBUTES = {
  jurisdiction: defineSearchAttributeKey('Jurisdiction', 'KEYWORD'),
  studyId: defineSearchAttributeKey('StudyId', 'KEYWORD'),
  datasetId: defineSearchAttributeKey('DatasetId', 'KEYWORD'),
  requestId: defineSearchAttributeKey('RequestId', 'KEYWORD'),
  requestKind: defineSearchAttributeKey('RequestKind', 'KEYWORD'),
} as const;

/** Error types of non-retryable failures; the Temporal UI shows these as the failure type. */
export const ErrorType = {
  PackageRejected: 'PackageRejected',
  ConsentImportRejected: 'ConsentImportRejected',
  UnknownJurisdiction: 'UnknownJurisdiction',
  KeyUnavailable: 'KeyUnavailable',
  AccessDenied: 'AccessDenied',
} as const;
export type ErrorType = (typeof ErrorType)[keyof typeof ErrorType];
