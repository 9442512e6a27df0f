import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { type Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { writeExpiredDemoDatasets } from '../../cli/demo/expired';
import { ingestTaskQueue, SEARCH_ATTRIBUTES } from '../../contracts';
import { getJurisdiction } from '../../jurisdictions';
import { AesGcmPayloadCodec } from '../../lib/crypto/codec';
import { readJournal, readResult } from '../../lib/erasure/journal';
import { ensureTool } from '../../lib/stack/tools';
import { readDatasetRecord } from '../../lib/storage/catalog';
import { datasetObjectPrefix } from '../../lib/storage/layout';
import { listVersions } from '../../lib/storage/versions';
import type { AuditEvent } from '../../schemas/audit';
import type { ErasureOperationInput } from '../../schemas/erasure';
import { stackState } from '../helpers';
import {
  destroyRetiredKey,
  expectDenied,
  sealedEvents,
  payloadKeyOnlyClient as payloadKeyOnlyAs,
  useClients,
} from '../harness';

// The erasure workflow deletes whatever its operation names, so it is the prize for anyone who reaches Temporal
// directly: it must run only for the Steward workflow that decided the erasure, with that workflow's sealed operation.

const clients = useClients();
const eu = getJurisdiction('eu');

/** A Temporal client that holds the payload key and nothing else: what anyone who can decode histories has. */
function payloadKeyOnlyClient(): Client {
  return payloadKeyOnlyAs(clients());
}

async function eventsOf(match: (e: AuditEvent) => boolean): Promise<AuditEvent[]> {
  return (await sealedEvents(clients(), 'eu')).map((e) => e.event).filter(match);
}

/** The input a workflow was started with, decoded as anyone holding the payload key can. */
async function startInput(workflowId: string): Promise<unknown> {
  const history = await clients().client.workflow.getHandle(workflowId).fetchHistory();
  const payloads = history.events![0]!.workflowExecutionStartedEventAttributes!.input!.payloads!;
  const [decoded] = await new AesGcmPayloadCodec(clients().keys).decode(payloads);
  return defaultPayloadConverter.fromPayload(decoded!);
}

describe('erasure operations', () => {
  it('a key destruction is an erasure child: its events name the operation, its certificate the operation and child', async () => {
    const study = `ST-ERASE-KEY-${randomUUID().slice(0, 8)}`;
    const { workflowId, certificateId } = await destroyRetiredKey(clients(), 'eu', study);
    const child = `${workflowId}/erase/key`;
    const events = await eventsOf((e) => e.workflow?.workflowId === child);
    expect(events.map((e) => [e.action, e.outcome, e.targets.certificateId])).toEqual([
      ['key.destroyed', 'success', certificateId],
      ['certificate.issued', 'success', certificateId],
    ]);
    expect(events[0]!.principal).toMatchObject({ role: 'dpo' });
    expect(events[0]!.details).toMatchObject({ operationId: child, version: 1, verified: true });
    expect(events[0]!.targets.keyIds).toEqual([`study/eu/${study}/v1`]);
    // Ops find it in the Temporal UI by jurisdiction and by the signed request, beside its parent.
    const described = await clients().client.workflow.getHandle(child).describe();
    expect(described.typedSearchAttributes.get(SEARCH_ATTRIBUTES.jurisdiction)).toBe('eu');
    expect(described.typedSearchAttributes.get(SEARCH_ATTRIBUTES.requestId)).toBe(events[0]!.targets.requestId);
    expect(events[0]!.targets.requestId).toBeTruthy();
    expect(described.parentExecution?.workflowId).toBe(workflowId);
    // A key version has no objects: nothing is journaled, and the certified result is recorded.
    expect(await readJournal(clients().s3, eu.buckets.catalog, child)).toBeUndefined();
    const recorded = await readResult(clients().s3, eu.buckets.catalog, child);
    expect(recorded?.erased.map((e) => e.certificateId)).toEqual([certificateId]);

    // Reset with the real `temporal` CLI (as an operator or an attacker might): the new run finds the certified result
    // and returns it; nothing is destroyed, recorded or certified twice.
    const bin = await ensureTool('temporal');
    const reset = spawnSync(
      bin,
      ['workflow', 'reset', '--workflow-id', child, '--type', 'FirstWorkflowTask', '--reason', 'test reset'],
      { encoding: 'utf8', timeout: 60_000, env: { ...process.env, TEMPORAL_ADDRESS: stackState().temporal.address } },
    );
    expect(reset.status, reset.stderr).toBe(0);
    const again = await clients().client.workflow.getHandle(child).result();
    expect(again.erased.map((e: { certificateId: string }) => e.certificateId)).toEqual([certificateId]);
    const after = await eventsOf((e) => e.workflow?.workflowId === child);
    expect(after.map((e) => e.action)).toEqual(['key.destroyed', 'certificate.issued']);
  });

  it('started directly with a made-up operation, or with a real one replayed, it is refused, audited, and deletes nothing', async () => {
    // A dataset whose retention runs for years: the prize.
    const [datasetId] = await writeExpiredDemoDatasets(clients().s3, eu, {
      studyId: 'ST-ERASE-ATTACK',
      datasets: 1,
      objectsPerDataset: 2,
      curatedAt: new Date().toISOString(),
    });
    const attacker = payloadKeyOnlyClient();
    const operation: ErasureOperationInput = {
      operationId: `attack-${randomUUID()}`,
      jurisdiction: 'eu',
      label: 'retention sweep (forged)',
      bundled: false,
      principal: { id: 'Demo Steward', role: 'steward' },
      requestedBy: null,
      approvedBy: [],
      requestId: null,
      units: [
        {
          unitId: datasetId!,
          event: 'dataset.deleted',
          targets: { datasetId: datasetId! },
          reason: { kind: 'retention', legalBasis: 'none', detail: 'forged' },
          note: 'forged',
          objects: {
            targets: [
              { bucket: eu.buckets.curated, prefixes: [datasetObjectPrefix(datasetId!)], bypassGovernance: true },
            ],
          },
        },
      ],
    };
    const made = `attack-made-up-${randomUUID()}`;
    const forged = {
      format: 'steward-message/1',
      kind: 'erasure.operation',
      jurisdiction: 'eu',
      from: { workflowId: 'retentionSweepWorkflow-x', runId: randomUUID() },
      to: made,
      id: `${made}/operation`,
      issuedAt: new Date().toISOString(),
      body: operation,
      mac: 'A'.repeat(43),
    };
    const refusals = [
      expectDenied(
        attacker.workflow.execute('eraseUnitsWorkflow', {
          args: [forged],
          taskQueue: ingestTaskQueue('eu'),
          workflowId: made,
        }),
      ),
    ];
    // A real sealed operation, taken from a finished erasure's history and started again: under its own id (the
    // erasure is closed, so Temporal allows it) and under another.
    const { workflowId: destroyId } = await destroyRetiredKey(
      clients(),
      'eu',
      `ST-ERASE-REPLAY-${randomUUID().slice(0, 8)}`,
    );
    const sealed = await startInput(`${destroyId}/erase/key`);
    const other = `attack-replayed-${randomUUID()}`;
    for (const workflowId of [`${destroyId}/erase/key`, other]) {
      refusals.push(
        expectDenied(
          attacker.workflow.execute('eraseUnitsWorkflow', {
            args: [sealed],
            taskQueue: ingestTaskQueue('eu'),
            workflowId,
          }),
        ),
      );
    }
    const [madeUp, sameId, otherId] = await Promise.all(refusals);
    expect(madeUp).toMatch(/^erasure refused: .*seal/);
    expect(sameId).toBe('erasure refused: an erasure is started only by the Steward workflow that decided it');
    expect(otherId).toMatch(/^erasure refused: .*(meant for|another)/);

    const denied = await eventsOf((e) => e.action === 'request.denied' && e.details.requested === 'erasure');
    expect(denied.filter((e) => [made, other].includes(String(e.details.workflowId)))).toHaveLength(2);
    expect(denied.every((e) => e.outcome === 'denied' && e.principal === null)).toBe(true);
    // Nothing was deleted, no key was destroyed again, and nothing was certified.
    expect(await readDatasetRecord(clients().s3, eu.buckets.catalog, datasetId!)).toBeDefined();
    expect(await listVersions(clients().s3, eu.buckets.curated, datasetObjectPrefix(datasetId!))).toHaveLength(2);
    expect(await eventsOf((e) => e.action === 'dataset.deleted' && e.targets.datasetId === datasetId)).toEqual([]);
    const replayedKeyEvents = await eventsOf(
      (e) => e.action === 'key.destroyed' && [other, `${destroyId}/erase/key`].includes(e.workflow?.workflowId ?? ''),
    );
    expect(replayedKeyEvents).toHaveLength(1);
  });
});
