import { randomUUID } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import {
  applyCatalogMutationSignal,
  catalogWriterStatusQuery,
  catalogWriterWorkflowId,
  consentWithdrawalWorkflowId,
  ingestTaskQueue,
} from '../../contracts';
import { getJurisdiction } from '../../jurisdictions';
import type { InternalMessage } from '../../schemas/message';
import { jurisdictionMessageKey, sealMessage } from '../../lib/auth/messages';
import type { catalogWriterWorkflow, withdrawConsentWorkflow } from '../../workflows';
import { tokenize } from '../../lib/crypto/pseudonymize';
import { readVaultShards, sealIdentifier } from '../../lib/crypto/vault';
import { readConsentRegistry } from '../../lib/storage/catalog';
import { importConsentCsv, signedBy } from '../helpers';
import { useClients } from '../harness';

const eu = getJurisdiction('eu');
const clients = useClients();

describe('consent registry', () => {
  it('keeps every record of 8 concurrent imports and 8 concurrent withdrawals; the later decision wins', async () => {
    const study = 'ST-CONCURRENT';
    const header = 'subject_id,scopes,status,icf_version,given_on,withdrawn_on\n';
    const subject = (i: number, j: number) => `C-${i}-${String(j).padStart(3, '0')}`;
    // Import i holds its own 50 subjects, and says subject 0 of import i+1 withdrew on 2024-06-01: that later
    // decision must win over import i+1's consent of 2024-01-01, whichever lands last.
    const csv = (i: number) =>
      header +
      Array.from({ length: 50 }, (_, j) => `${subject(i, j)},primary-research,given,v1,2024-01-01,\n`).join('') +
      `${subject((i + 1) % 8, 0)},primary-research,withdrawn,v1,2024-01-01,2024-06-01\n`;
    const withdraw = (i: number) =>
      clients().client.workflow.execute<typeof withdrawConsentWorkflow>('withdrawConsentWorkflow', {
        args: [
          signedBy('dpo', {
            action: 'consent.withdraw',
            jurisdiction: 'eu',
            params: { jurisdiction: 'eu', studyId: study, subjectId: subject(i, 1), scopes: [], reason: 'asked' },
          }),
        ],
        taskQueue: ingestTaskQueue('eu'),
        workflowId: consentWithdrawalWorkflowId('eu', study, randomUUID()),
      });
    await Promise.all([
      ...Array.from({ length: 8 }, (_, i) => importConsentCsv(clients(), csv(i), 'eu', study)),
      ...Array.from({ length: 8 }, (_, i) => withdraw(i)),
    ]);

    const key = await clients().keys.studyKey('eu', study);
    const token = (id: string) => tokenize(key.material, key.version, id);
    const registry = await readConsentRegistry(clients().s3, eu.buckets.catalog, 'eu', study, new Date().toISOString());
    const byToken = new Map(registry.entries.map((e) => [e.token, e]));
    expect(registry.entries).toHaveLength(400);
    for (let i = 0; i < 8; i++) {
      for (let j = 0; j < 50; j++) {
        const entry = byToken.get(token(subject(i, j)));
        expect(entry, subject(i, j)).toBeDefined();
        expect(entry!.status, subject(i, j)).toBe(j === 0 || j === 1 ? 'withdrawn' : 'given');
      }
      expect(byToken.get(token(subject(i, 1)))!.withdrawal?.reason).toBe('asked');
    }
  });
});

describe('catalog writer', () => {
  it('applies concurrent changes to one vault one at a time, losing none', async () => {
    const study = 'ST-WRITER';
    const { client, s3, keys } = clients();
    const vaultKey = await keys.vaultKey('eu', study);
    const tokens = Array.from({ length: 20 }, (_, i) => `v1.${String(i).padStart(43, 'T')}`);
    await s3.send(
      new PutObjectCommand({
        Bucket: eu.buckets.catalog,
        Key: `vault/${study}/ds-eu-${'0'.repeat(24)}.json`,
        Body: JSON.stringify({
          format: 'steward-vault/1',
          jurisdiction: 'eu',
          studyId: study,
          datasetId: `ds-eu-${'0'.repeat(24)}`,
          keyId: vaultKey.id,
          entries: Object.fromEntries(tokens.map((t, i) => [t, sealIdentifier(vaultKey, t, `W-${i}`)])),
        }),
      }),
    );
    // Sixteen destructions of different entries of the one shard, sent at once: each is a read-change-write of the
    // shard, so any two run side by side would bring back an entry the other destroyed.
    const writerId = catalogWriterWorkflowId('eu', `vault/${study}`);
    const messageKey = await jurisdictionMessageKey(keys, 'eu');
    const sender = { workflowId: 'test-single-writer', runId: randomUUID() };
    const started = await Promise.all(
      tokens.slice(0, 16).map((token) =>
        client.workflow.signalWithStart<typeof catalogWriterWorkflow, [InternalMessage]>('catalogWriterWorkflow', {
          workflowId: writerId,
          taskQueue: ingestTaskQueue('eu'),
          args: [{ jurisdiction: 'eu', target: `vault/${study}` }],
          signal: applyCatalogMutationSignal,
          // Sealed as a workflow of the jurisdiction's worker would seal them (the writer refuses anything else).
          signalArgs: [
            sealMessage(messageKey, {
              kind: 'catalog.change',
              jurisdiction: 'eu',
              from: sender,
              to: writerId,
              id: randomUUID(),
              issuedAt: new Date().toISOString(),
              body: { mutation: { kind: 'vault.entries-destroyed', studyId: study, tokens: [token] } },
            }),
          ],
        }),
      ),
    );
    const handle = client.workflow.getHandle(writerId);
    const deadline = Date.now() + 60_000;
    while ((await handle.query(catalogWriterStatusQuery)).applied < 16) {
      if (Date.now() > deadline) throw new Error('the writer did not apply the sixteen changes');
      await new Promise((r) => setTimeout(r, 200));
    }
    const shards = await readVaultShards(s3, eu.buckets.catalog, study);
    expect(Object.keys(shards[0]!.shard.entries).sort()).toEqual(tokens.slice(16).sort());
    // Sixteen changes make more history than the suite's Temporal lets a run keep (test/global-setup.ts): the writer
    // continues as new once its queue is empty, and its count goes with it.
    const first = client.workflow.getHandle(writerId, started[0]!.signaledRunId);
    while ((await first.describe()).status.name !== 'CONTINUED_AS_NEW') {
      if (Date.now() > deadline) throw new Error('the writer did not continue as new');
      await new Promise((r) => setTimeout(r, 200));
    }
    // The new run restores the count from its sealed state (an activity): until then it reports none applied.
    let status = await handle.query(catalogWriterStatusQuery);
    while (status.applied !== 16 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      status = await handle.query(catalogWriterStatusQuery);
    }
    expect(status).toEqual({ applied: 16, queued: 0 });
  });
});
