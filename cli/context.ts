import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Client, WorkflowHandle, WorkflowStartOptions } from '@temporalio/client';
import type { Workflow } from '@temporalio/common';
import { ingestTaskQueue, SEARCH_ATTRIBUTES, type RequestKind } from '../contracts';
import { startOrAttach } from '../lib/client/start';
import { note } from './output';
import { loadConfig, type StewardConfig } from '../lib/runtime/config';
import { EXIT, UserError } from '../lib/runtime/errors';
import { allowed, denialMessage, type Action } from '../lib/auth/roles';
import { FileKeyStore } from '../lib/crypto/keystore';
import { createS3Client } from '../lib/storage/s3';
import { connectClient } from '../lib/client/temporal';

export interface GlobalOptions {
  dataDir?: string;
  json?: boolean;
  as?: string;
}

/** What most commands need: config, a Temporal client with the encryption codec, and S3 per jurisdiction. */
export class CommandContext {
  private client: Client | undefined;
  private readonly s3Clients = new Map<string, S3Client>();

  private constructor(
    readonly config: StewardConfig,
    readonly json: boolean,
  ) {}

  static create(options: GlobalOptions): CommandContext {
    return new CommandContext(
      loadConfig({
        ...(options.dataDir ? { dataDir: options.dataDir } : {}),
        ...(options.as ? { principal: options.as } : {}),
      }),
      options.json ?? false,
    );
  }

  async temporal(): Promise<Client> {
    if (!this.client) {
      const keys = await FileKeyStore.open(path.join(this.config.dataDir, 'keys'), this.config.masterKey);
      this.client = await connectClient(this.config.temporal, keys);
    }
    return this.client;
  }

  s3(jurisdiction: string): S3Client {
    let client = this.s3Clients.get(jurisdiction);
    if (!client) {
      client = createS3Client(this.config.s3For(jurisdiction));
      this.s3Clients.set(jurisdiction, client);
    }
    return client;
  }

  /** Refuses, before anything happens, an action the acting principal's role does not allow. */
  authorize(action: Action): void {
    if (!allowed(this.config.principal, action))
      throw new UserError(denialMessage(this.config.principal, action), EXIT.denied);
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
      jurisdiction: string;
      studyId?: string;
      args: Parameters<T>;
    },
  ): Promise<WorkflowHandle<T>> {
    const { handle, started } = await startOrAttach<T>(await this.temporal(), workflowType, {
      args: request.args,
      taskQueue: ingestTaskQueue(request.jurisdiction),
      workflowId: request.workflowId,
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      typedSearchAttributes: [
        { key: SEARCH_ATTRIBUTES.jurisdiction, value: request.jurisdiction },
        ...(request.studyId ? [{ key: SEARCH_ATTRIBUTES.studyId, value: request.studyId }] : []),
        { key: SEARCH_ATTRIBUTES.requestId, value: request.requestId },
        { key: SEARCH_ATTRIBUTES.requestKind, value: request.kind },
      ],
    } as unknown as WorkflowStartOptions<T>);
    if (!started) note(`found request ${request.requestId} started earlier; showing its outcome`);
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
