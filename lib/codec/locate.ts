import { createHash } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

/** The digest the codec server records for a payload: the first 16 hex digits of its encrypted bytes' SHA-256. */
export function payloadDigest(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex').slice(0, 16);
}

export interface LocatedPayload {
  digest: string;
  workflowId: string;
  runId: string;
  eventId: string;
  eventType: string;
}

function isPayload(value: object): value is { data: Uint8Array; metadata: object } {
  return (
    'data' in value && value.data instanceof Uint8Array && 'metadata' in value && typeof value.metadata === 'object'
  );
}

/** Every payload (inputs, results, signals, failures' encoded attributes) anywhere in one history event. */
function* payloadsOf(value: unknown): Generator<Uint8Array> {
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return;
  if (isPayload(value)) {
    yield value.data;
    return;
  }
  for (const child of Array.isArray(value) ? value : Object.values(value)) yield* payloadsOf(child);
}

/**
 * Which workflow, run and history event holds each payload a `payloads.decoded` audit event names: the Web UI's decode
 * requests do not say, so an auditor matches the recorded digests against the histories. Scans the workflows a
 * visibility query selects (all of the namespace by default), newest first, up to `limit`.
 */
export async function locatePayloads(
  client: Client,
  digests: readonly string[],
  options: { query?: string; limit?: number; onWorkflow?: (scanned: number) => void } = {},
): Promise<LocatedPayload[]> {
  const wanted = new Set(digests);
  const found: LocatedPayload[] = [];
  let scanned = 0;
  for await (const execution of client.workflow.list(options.query ? { query: options.query } : {})) {
    if (options.limit !== undefined && scanned >= options.limit) break;
    scanned += 1;
    options.onWorkflow?.(scanned);
    const history = await client.workflow.getHandle(execution.workflowId, execution.runId).fetchHistory();
    for (const event of history.events ?? []) {
      for (const data of payloadsOf(event)) {
        const digest = payloadDigest(data);
        if (!wanted.has(digest)) continue;
        found.push({
          digest,
          workflowId: execution.workflowId,
          runId: execution.runId,
          eventId: String(event.eventId),
          eventType: temporal.api.enums.v1.EventType[event.eventType ?? 0] ?? String(event.eventType),
        });
      }
    }
  }
  return found;
}
