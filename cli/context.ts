import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Client, WorkflowHandle, WorkflowStartOptions } from '@temporalio/client';
import type { Workflow } from '@temporalio/common';
import { ingestTaskQueue, SEARCH_ATTRIBUTES, type RequestKind } from '../contracts';
import { firstInput, startOrAttach } from '../lib/client/start';
import { note } from './output';
import { loadConfig, type StewardConfig } from '../lib/runtime/config';
import type { Action } from '../lib/auth/roles';
import { requestDifferences, signedInput } from '../lib/client/request';
import { UserError } from '../lib/runtime/errors';
import { FileKeyStore, type KeyStore } from '../lib/crypto/keystore';
import { jurisdictionMessageKey } from '../lib/auth/messages';
import { appendAudit } from '../lib/client/audit';
import { openIdentity, passphraseFor, type Identity } from '../lib/pki/identity';
import { createS3Client } from '../lib/storage/s3';
import { connectClient } from '../lib/client/temporal';

export interface GlobalOptions {
  dataDir?: string;
  json?: boolean;
  identity?: string;
}

/** What most commands need: config, a Temporal client with the encryption codec, and S3 per jurisdiction. */
export class CommandContext {
  private client: Client | undefined;
  private keys: KeyStore | undefined;
  private opened: Identity | undefined;
  private readonly s3Clients = new Map<string, S3Client>();

  private constructor(
    readonly config: StewardConfig,
    readonly json: boolean,
  ) {}

  static create(options: GlobalOptions): CommandContext {
    return new CommandContext(
      loadConfig({
        ...(options.dataDir ? { dataDir: options.dataDir } : {}),
        ...(options.identity ? { identity: options.identity } : {}),
      }),
      options.json ?? false,
    );
  }

  async temporal(): Promise<Client> {
    this.client ??= await connectClient(this.config.temporal, await this.keyStore());
    return this.client;
  }

  /** The key store (payload keys; for the CA administrator's commands, the jurisdictions' message keys too). */
  async keyStore(): Promise<KeyStore> {
    this.keys ??= await FileKeyStore.open(path.join(this.config.dataDir, 'keys'), this.config.masterKey);
    return this.keys;
  }

  /** Appends events to a jurisdiction's trail, sealed with its message key (needs the key store's master key). */
  async appendAudit(jurisdiction: string, drafts: Parameters<typeof appendAudit>[3]): Promise<void> {
    const key = await jurisdictionMessageKey(await this.keyStore(), jurisdiction);
    await appendAudit(await this.temporal(), key, jurisdiction, drafts);
  }

  s3(jurisdiction: string): S3Client {
    let client = this.s3Clients.get(jurisdiction);
    if (!client) {
      client = createS3Client(this.config.s3For(jurisdiction));
      this.s3Clients.set(jurisdiction, client);
    }
    return client;
  }

  /** The identity this command signs with, opened with its passphrase (asked for once). */
  async identity(): Promise<Identity> {
    this.opened ??= openIdentity(this.config.identityDir, await passphraseFor(this.config.identityDir));
    return this.opened;
  }

  /** A workflow input: the request, signed with this command's identity. */
  async sign(request: { action: Action; jurisdiction: string; params: unknown; requestId?: string; meaning?: string }) {
    return signedInput(await this.identity(), request);
  }

  /**
   * Starts the workflow of a person's request, under an id made from its request id: a second run of the same
   * command with the same `--request-id` finds the first run (running or finished) instead of starting another.
   */
  async startRequest<T extends Workflow>(
    workflowType: string,
    request: {
      workflowId: string;
      requestId: string;
      kind: RequestKind;
      action: Action;
      jurisdiction: string;
      studyId?: string;
      datasetId?: string;
      params: unknown;
      meaning?: string;
    },
  ): Promise<WorkflowHandle<T>> {
    const input = await this.sign({
      action: request.action,
      jurisdiction: request.jurisdiction,
      params: request.params,
      requestId: request.requestId,
      ...(request.meaning ? { meaning: request.meaning } : {}),
    });
    const { handle, started } = await startOrAttach<T>(await this.temporal(), workflowType, {
      args: [input],
      taskQueue: ingestTaskQueue(request.jurisdiction),
      workflowId: request.workflowId,
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      typedSearchAttributes: [
        { key: SEARCH_ATTRIBUTES.jurisdiction, value: request.jurisdiction },
        ...(request.studyId ? [{ key: SEARCH_ATTRIBUTES.studyId, value: request.studyId }] : []),
        ...(request.datasetId ? [{ key: SEARCH_ATTRIBUTES.datasetId, value: request.datasetId }] : []),
        { key: SEARCH_ATTRIBUTES.requestId, value: request.requestId },
        { key: SEARCH_ATTRIBUTES.requestKind, value: request.kind },
      ],
    } as unknown as WorkflowStartOptions<T>);
    if (!started) {
      // The request id names the first run: a command asking for something else under it is not that request.
      const differences = requestDifferences(
        await firstInput(await this.temporal(), request.workflowId),
        input.request,
      );
      if (differences.length > 0) {
        throw new UserError(
          `--request-id ${request.requestId} names an earlier request that differs from this one (${differences.join(', ')}); nothing was done. Run the command without --request-id to make a new request.`,
        );
      }
      note(`found request ${request.requestId} started earlier; showing its outcome`);
    }
    return handle;
  }

  uiUrl(workflowId: string): string | undefined {
    const base = this.config.stack?.temporal.uiUrl;
    return base
      ? `${base}/namespaces/${this.config.temporal.namespace}/workflows/${encodeURIComponent(workflowId)}`
      : undefined;
  }

  async close(): Promise<void> {
    await this.client?.connection.close();
    for (const s3 of this.s3Clients.values()) s3.destroy();
  }
}
