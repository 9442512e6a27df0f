import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { Client, WorkflowFailedError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure, TemporalFailure } from '@temporalio/common';
import { NativeConnection, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, expect } from 'vitest';
import type { S3Client } from '@aws-sdk/client-s3';
import { getJurisdiction } from '../jurisdictions';
import type { StackState } from '../schemas/config';
import { connectClient, stewardDataConverter } from '../lib/client/temporal';
import { AesGcmPayloadCodec } from '../lib/crypto/codec';
import { FileKeyStore, type KeyStore } from '../lib/crypto/keystore';
import { createS3Client } from '../lib/storage/s3';
import { AuditSegmentSchema, type AuditSegment } from '../schemas/audit';
import { listSegmentSeqs, readSegment } from '../lib/audit/store';
import { flushAudit } from '../lib/client/audit';
import { StewardAuthority, TrustAnchor } from '../lib/pki/authority';
import { jurisdictionMessageKey } from '../lib/auth/messages';
import { activityInterceptors, createJurisdictionActivities } from '../workers/activities';
import { createIngestActivities } from '../activities/ingest';
import { signedBy, stackState, tempDir } from './helpers';
import { ingestTaskQueue } from '../contracts';
import type { destroyStudyKeyWorkflow, rotateStudyKeyWorkflow } from '../workflows';

export interface TestClients {
  client: Client;
  s3: S3Client;
  keys: FileKeyStore;
  state: StackState;
  close(): Promise<void>;
}

/** A Temporal client that holds the payload key and nothing else: what anyone who can decode histories has. */
export function payloadKeyOnlyClient(clients: TestClients): Client {
  const keys = clients.keys;
  const payloadOnly = {
    payloadKey: () => keys.payloadKey(),
    payloadKeyById: (id: string) => keys.payloadKeyById(id),
  } as unknown as KeyStore;
  return new Client({
    connection: clients.client.connection,
    namespace: clients.state.temporal.namespace,
    dataConverter: { payloadCodecs: [new AesGcmPayloadCodec(payloadOnly)] },
  });
}

export async function connect(state: StackState = stackState()): Promise<TestClients> {
  const keys = await FileKeyStore.open(path.join(state.dataDir, 'keys'));
  const client = await connectClient(state.temporal, keys);
  const s3 = createS3Client(state.s3);
  return {
    client,
    s3,
    keys,
    state,
    async close() {
      await client.connection.close();
      s3.destroy();
    },
  };
}

/**
 * Clients for one test file, connected before its tests and closed after: `const clients = useClients();` then
 * `clients().client` inside tests.
 */
export function useClients(state?: () => StackState): () => TestClients {
  let clients: TestClients | undefined;
  beforeAll(async () => {
    clients = await connect(state?.());
  });
  afterAll(async () => {
    await clients?.close();
  });
  return () => {
    if (!clients) throw new Error('clients are connected in beforeAll');
    return clients;
  };
}

/**
 * Runs `fn` while an in-process worker polls a task queue of its own, with the real activities of one jurisdiction
 * (the stack's S3 and key store), so a test's workflows run on nothing another test polls.
 */
export async function withWorker<T>(
  clients: TestClients,
  jurisdictionId: string,
  fn: (taskQueue: string) => Promise<T>,
): Promise<T> {
  const jurisdiction = getJurisdiction(jurisdictionId);
  const taskQueue = `test-${jurisdictionId}-${randomUUID()}`;
  const scratchDir = await tempDir('steward-worker-');
  const { s3, keys } = clients;
  const pkiDir = path.join(clients.state.dataDir, 'pki');
  const signer = await (await StewardAuthority.open(pkiDir, keys)).signer(jurisdictionId);
  const connection = await NativeConnection.connect({ address: clients.state.temporal.address });
  const worker = await Worker.create({
    connection,
    taskQueue,
    workflowBundle: { codePath: path.join(clients.state.dataDir, 'workflow-bundle.js') },
    activities: createJurisdictionActivities({
      s3,
      keys,
      jurisdiction,
      scratchDir,
      workDir: path.join(scratchDir, 'work'),
      trust: new TrustAnchor(pkiDir),
      signer: async () => signer,
      temporal: async () => clients.client,
      messageKey: await jurisdictionMessageKey(keys, jurisdictionId),
    }),
    dataConverter: stewardDataConverter(keys, { worker: true }),
    interceptors: { activity: activityInterceptors },
  });
  try {
    return await worker.runUntil(fn(taskQueue));
  } finally {
    await connection.close();
  }
}

/** A jurisdiction's ingestion activities on the stack's storage, keys and CA, to call outside a worker. */
export function ingestActivitiesOf(clients: TestClients, jurisdictionId: string, scratchDir: string) {
  return createIngestActivities({
    s3: clients.s3,
    keys: clients.keys,
    jurisdiction: getJurisdiction(jurisdictionId),
    scratchDir,
    workDir: scratchDir,
    trust: new TrustAnchor(path.join(clients.state.dataDir, 'pki')),
  });
}

/** The failure chain of a failed workflow, outermost first, by class name (and type, for application failures). */
export function failureChain(error: unknown): string[] {
  const chain: string[] = [];
  let current: unknown = error;
  while (current instanceof Error) {
    chain.push(
      current instanceof ApplicationFailure ? `ApplicationFailure(${current.type})` : current.constructor.name,
    );
    current = current instanceof WorkflowFailedError || current instanceof TemporalFailure ? current.cause : undefined;
  }
  return chain;
}

/** The innermost application failure of a failed workflow. */
export function rootApplicationFailure(error: unknown): ApplicationFailure {
  let current: unknown = error;
  let found: ApplicationFailure | undefined;
  while (current instanceof WorkflowFailedError || current instanceof TemporalFailure) {
    if (current instanceof ApplicationFailure) found = current;
    current = current.cause;
  }
  if (!found) throw new Error(`no ApplicationFailure in ${failureChain(error).join(' → ')}`);
  return found;
}

/** Awaits a workflow expected to fail; returns its error for assertions on the chain. */
export async function failureOf(promise: Promise<unknown>): Promise<WorkflowFailedError> {
  const error = await promise.then(
    () => new Error('expected the workflow to fail'),
    (e: unknown) => e,
  );
  if (!(error instanceof WorkflowFailedError)) throw error;
  return error;
}

/** Asserts a workflow was denied inside the workflow: WorkflowFailedError → ApplicationFailure(AccessDenied). */
export async function expectDenied(promise: Promise<unknown>): Promise<string> {
  const error = await failureOf(promise);
  expect(failureChain(error)).toEqual(['WorkflowFailedError', 'ApplicationFailure(AccessDenied)']);
  const root = rootApplicationFailure(error);
  expect(root.nonRetryable).toBe(true);
  return root.message;
}

/** The failure type and message a refused workflow update carries. */
export async function refusal(promise: Promise<unknown>): Promise<{ type: string | undefined; message: string }> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(WorkflowUpdateFailedError);
  let root: unknown = (error as Error).cause;
  while (root instanceof Error && root.cause && !(root instanceof ApplicationFailure)) root = root.cause;
  expect(root).toBeInstanceOf(ApplicationFailure);
  return { type: (root as ApplicationFailure).type ?? undefined, message: (root as ApplicationFailure).message };
}

/** A study key version destroyed on the DPO's signed request: an erasure of one unit, run as the workflow's child. */
export async function destroyRetiredKey(
  clients: TestClients,
  jurisdiction: string,
  study: string,
): Promise<{ workflowId: string; certificateId: string }> {
  await clients.keys.studyKey(jurisdiction, study);
  await clients.client.workflow.execute<typeof rotateStudyKeyWorkflow>('rotateStudyKeyWorkflow', {
    args: [
      signedBy('steward', {
        action: 'keys.rotate',
        jurisdiction,
        params: { jurisdiction, studyId: study },
      }),
    ],
    taskQueue: ingestTaskQueue(jurisdiction),
    workflowId: `test-erasure-rotate-${randomUUID()}`,
  });
  const workflowId = `test-erasure-destroy-${randomUUID()}`;
  const result = await clients.client.workflow.execute<typeof destroyStudyKeyWorkflow>('destroyStudyKeyWorkflow', {
    args: [
      signedBy('dpo', {
        action: 'keys.destroy',
        jurisdiction,
        params: { jurisdiction, studyId: study, version: 1 },
        meaning: `approve cryptographic erase of study/${jurisdiction}/${study}/v1`,
      }),
    ],
    taskQueue: ingestTaskQueue(jurisdiction),
    workflowId,
  });
  return { workflowId, certificateId: result.certificateId };
}

export { ActivityFailure };

/** Every sealed event of a jurisdiction's audit trail, after having the trail seal what is pending. */
export async function sealedEvents(clients: TestClients, jurisdiction: string): Promise<AuditSegment['entries']> {
  await flushAudit(clients.client, jurisdiction);
  const bucket = getJurisdiction(jurisdiction).buckets.evidence;
  const entries: AuditSegment['entries'] = [];
  for (const seq of await listSegmentSeqs(clients.s3, bucket)) {
    entries.push(...AuditSegmentSchema.parse(await readSegment(clients.s3, bucket, seq)).entries);
  }
  return entries;
}
