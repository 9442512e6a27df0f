import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import {
  DeleteObjectCommand,
  ListObjectVersionsCommand,
  PutBucketPolicyCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { Client } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { writeExpiredDemoDatasets } from '../../cli/demo/expired';
import {
  appendAuditEventsSignal,
  applyCatalogMutationSignal,
  auditTrailWorkflowId,
  catalogWriterStatusQuery,
  catalogWriterWorkflowId,
  ingestTaskQueue,
  keyRotationWorkflowId,
} from '../../contracts';
import { getJurisdiction } from '../../jurisdictions';
import { jurisdictionMessageKey, sealMessage } from '../../lib/auth/messages';
import { verifyTrail } from '../../lib/audit/segment';
import { listStoredSegments, readSegment, segmentKey } from '../../lib/audit/store';
import { flushAudit } from '../../lib/client/audit';
import { grantFingerprint, issueCodecGrant } from '../../lib/codec/grant';
import { AesGcmPayloadCodec } from '../../lib/crypto/codec';
import { sealIdentifier } from '../../lib/crypto/vault';
import { ensureTool } from '../../lib/stack/tools';
import { readDatasetRecord } from '../../lib/storage/catalog';
import { jurisdictionAccount, rootCredentials } from '../../lib/storage/accounts';
import { createS3Client } from '../../lib/storage/s3';
import { listVersions } from '../../lib/storage/versions';
import { readVaultShards } from '../../lib/crypto/vault';
import type { AuditEvent } from '../../schemas/audit';
import type { rotateStudyKeyWorkflow } from '../../workflows';
import { identity, signedBy, stackState } from '../helpers';
import {
  expectDenied,
  failureChain,
  failureOf,
  sealedEvents,
  payloadKeyOnlyClient as payloadKeyOnlyAs,
  useClients,
} from '../harness';

// The trust boundary, played as an attacker who skips the CLI: a client that holds the payload key (or an ops grant
// on the codec server) and reaches Temporal and S3 directly, with the real `temporal` CLI and the SDK client. Each
// attack must be refused, audited, and change nothing.

const clients = useClients();
const eu = getJurisdiction('eu');

/** A Temporal client that holds the payload key and nothing else: what anyone who can decode histories has. */
function payloadKeyOnlyClient(): Client {
  return payloadKeyOnlyAs(clients());
}

/** The real `temporal` CLI, encoding and decoding through the stack's codec server with an ops grant. */
async function temporalCli(...args: string[]) {
  const codec = stackState().codec!;
  const grant = issueCodecGrant(identity('ops'), { jurisdiction: codec.auditJurisdiction, hours: 1 });
  return temporalPlain(...args, '--codec-endpoint', codec.url, '--codec-auth', `Bearer ${grant.token}`);
}

/** The real `temporal` CLI with no codec: its payloads go in the clear. */
async function temporalPlain(...args: string[]) {
  const bin = await ensureTool('temporal');
  const run = spawnSync(bin, [...args, '--address', stackState().temporal.address, '--namespace', 'default'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

async function eventsOf(jurisdiction: string, match: (e: AuditEvent) => boolean): Promise<AuditEvent[]> {
  return (await sealedEvents(clients(), jurisdiction)).map((e) => e.event).filter(match);
}

/** A message with the shape of a sealed one, and a made-up seal. */
function forgedMessage(fields: {
  kind: string;
  to: string;
  body: unknown;
  from?: { workflowId: string; runId: string };
}) {
  return {
    format: 'steward-message/1',
    jurisdiction: 'eu',
    from: fields.from ?? { workflowId: 'ingest-eu-anything', runId: randomUUID() },
    id: randomUUID(),
    issuedAt: new Date().toISOString(),
    mac: 'A'.repeat(43),
    kind: fields.kind,
    to: fields.to,
    body: fields.body,
  };
}

describe('forged sweeps', () => {
  it('a cron run with forged state is refused like the first run, audited each time, and deletes nothing', async () => {
    const [datasetId] = await writeExpiredDemoDatasets(clients().s3, eu, {
      studyId: 'ST-SEC-CRON',
      datasets: 1,
      objectsPerDataset: 2,
      curatedAt: new Date().toISOString(),
    });
    const workflowId = `retention-sweep-eu-forged-${randomUUID()}`;
    const state = forgedMessage({
      kind: 'state',
      to: workflowId,
      from: { workflowId, runId: randomUUID() },
      body: { sweepId: workflowId, jurisdiction: 'eu', asOf: '2100-01-01T00:00:00.000Z', dryRun: false },
    });
    const started = await temporalCli(
      'workflow',
      'start',
      '--type',
      'retentionSweepWorkflow',
      '--task-queue',
      ingestTaskQueue('eu'),
      '-w',
      workflowId,
      '--cron',
      '@every 2s',
      '--input',
      JSON.stringify({ state }),
    );
    expect(started.code, started.stderr).toBe(0);
    // Temporal starts the cron's second run with `continuedFromExecutionRunId` set, as a continue-as-new would.
    const denied = await until('two refused cron runs', async () => {
      const events = await eventsOf('eu', (e) => e.workflow?.workflowId === workflowId);
      return new Set(events.map((e) => e.workflow!.runId)).size >= 2 ? events : undefined;
    });
    await clients().client.workflow.getHandle(workflowId).terminate('test over');
    expect(new Set(denied.map((e) => `${e.action}:${e.outcome}:${e.principal}`))).toEqual(
      new Set(['request.denied:denied:null']),
    );
    expect(denied[0]!.reason).toMatch(/only through its own continue-as-new/);
    expect(await readDatasetRecord(clients().s3, eu.buckets.catalog, datasetId!)).toBeDefined();
    expect(await listVersions(clients().s3, eu.buckets.curated, `datasets/${datasetId}/`)).toHaveLength(2);
  });

  it('a scheduled sweep not started by the schedule, or sent to another jurisdiction, is refused in the worker’s own trail', async () => {
    const attacker = payloadKeyOnlyClient();
    const byHand = `retention-sweep-eu-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    const misrouted = `retention-sweep-us-misrouted-${randomUUID()}`;
    const runs = [
      expectDenied(
        attacker.workflow.execute('retentionSweepWorkflow', {
          args: [{ scheduled: { jurisdiction: 'eu' } }],
          taskQueue: ingestTaskQueue('eu'),
          workflowId: byHand,
        }),
      ),
      expectDenied(
        attacker.workflow.execute('retentionSweepWorkflow', {
          args: [{ scheduled: { jurisdiction: 'us' } }],
          taskQueue: ingestTaskQueue('eu'),
          workflowId: misrouted,
        }),
      ),
    ];
    expect(await runs[0]).toMatch(/not started by the schedule retention-sweep-eu/);
    expect(await runs[1]).toMatch(/a scheduled sweep of us sent to a worker of eu/);
    const inEu = await eventsOf('eu', (e) => [byHand, misrouted].includes(e.workflow?.workflowId ?? ''));
    expect(inEu.map((e) => [e.workflow!.workflowId, e.action, e.outcome]).sort()).toEqual(
      [
        [byHand, 'request.denied', 'denied'],
        [misrouted, 'request.denied', 'denied'],
      ].sort(),
    );
    expect(await eventsOf('us', (e) => e.workflow?.workflowId === misrouted)).toEqual([]);
  });
});

describe('replayed requests', () => {
  it('a signed request is used by one run: a re-start under its id and a reset are refused, audited, and rotate nothing', async () => {
    const study = `ST-SEC-REPLAY-${randomUUID().slice(0, 8)}`;
    await clients().keys.studyKey('eu', study);
    const requestId = randomUUID();
    const input = signedBy('steward', {
      action: 'keys.rotate',
      jurisdiction: 'eu',
      requestId,
      params: { jurisdiction: 'eu', studyId: study },
    });
    const workflowId = keyRotationWorkflowId('eu', study, requestId);
    const attacker = payloadKeyOnlyClient();
    const first = await attacker.workflow.start<typeof rotateStudyKeyWorkflow>('rotateStudyKeyWorkflow', {
      args: [input],
      taskQueue: ingestTaskQueue('eu'),
      workflowId,
    });
    expect((await first.result()).currentVersion).toBe(2);

    // The same encrypted input again under the same id, allowed by the reuse policy, within the 10 minutes.
    const again = attacker.workflow.execute<typeof rotateStudyKeyWorkflow>('rotateStudyKeyWorkflow', {
      args: [input],
      taskQueue: ingestTaskQueue('eu'),
      workflowId,
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    });
    expect(await expectDenied(again)).toMatch(
      new RegExp(`request ${requestId} was already used by workflow ${workflowId} run ${first.firstExecutionRunId}`),
    );

    // A reset to the first workflow task keeps the original start time (and so passes the freshness check).
    const reset = await temporalCli(
      'workflow',
      'reset',
      '-w',
      workflowId,
      '-r',
      first.firstExecutionRunId,
      '--type',
      'FirstWorkflowTask',
      '--reason',
      'replay',
    );
    expect(reset.code, reset.stderr).toBe(0);
    const resetRun = await until('the reset run', async () => {
      const d = await clients().client.workflow.getHandle(workflowId).describe();
      return d.runId !== first.firstExecutionRunId && d.status.name !== 'RUNNING' ? d : undefined;
    });
    expect(resetRun.status.name).toBe('FAILED');
    expect(await expectDenied(clients().client.workflow.getHandle(workflowId).result())).toMatch(
      /was already used by workflow/,
    );

    expect((await clients().keys.studyKeyVersions('eu', study)).map((v) => [v.version, v.state])).toEqual([
      [1, 'retired'],
      [2, 'active'],
    ]);
    const events = await eventsOf('eu', (e) => e.targets.requestId === requestId);
    expect(events.map((e) => `${e.action}:${e.outcome}`).sort()).toEqual([
      'key.created:success',
      'key.rotated:success',
      'request.denied:denied',
      'request.denied:denied',
    ]);
  });
});

describe('evidence', () => {
  it('no Steward account can delete a sealed segment or change the evidence bucket’s policy', async () => {
    await flushAudit(clients().client, 'eu');
    const newest = (await listStoredSegments(clients().s3, eu.buckets.evidence)).at(-1)!;
    const key = segmentKey(newest.seq);
    const { dataDir, s3 } = stackState();
    const account = createS3Client({ ...s3, ...(await jurisdictionAccount(dataDir, 'eu')) });
    const root = createS3Client({ ...s3, ...(await rootCredentials(dataDir)) });
    const refusal = async (send: () => Promise<unknown>) =>
      send().then(
        () => 'allowed',
        (e: Error) => e.name,
      );
    const Bucket = eu.buckets.evidence;
    expect(
      await refusal(() =>
        account.send(
          new DeleteObjectCommand({ Bucket, Key: key, VersionId: newest.versionId!, BypassGovernanceRetention: true }),
        ),
      ),
    ).toBe('AccessDenied');
    expect(await refusal(() => account.send(new DeleteObjectCommand({ Bucket, Key: key })))).toBe('AccessDenied');
    expect(
      await refusal(() =>
        account.send(
          new PutBucketPolicyCommand({ Bucket, Policy: JSON.stringify({ Version: '2012-10-17', Statement: [] }) }),
        ),
      ),
    ).toBe('AccessDenied');
    // COMPLIANCE retention: not even storage's root account can remove the sealed version.
    expect(
      await refusal(() =>
        root.send(
          new DeleteObjectCommand({ Bucket, Key: key, VersionId: newest.versionId!, BypassGovernanceRetention: true }),
        ),
      ),
    ).toBe('AccessDenied');
    const versions = await account.send(new ListObjectVersionsCommand({ Bucket, Prefix: key }));
    expect(versions.DeleteMarkers ?? []).toEqual([]);
    expect(versions.Versions?.map((v) => v.VersionId)).toEqual([newest.versionId]);
    const ca = (await import('node:fs')).readFileSync(path.join(dataDir, 'pki', 'ca.pem'), 'utf8');
    const stored = new Map<number, unknown>();
    for (const s of await listStoredSegments(clients().s3, Bucket)) {
      stored.set(s.seq, await readSegment(clients().s3, Bucket, s.seq, s.versionId));
    }
    expect(verifyTrail(stored, ca).problems).toEqual([]);
    account.destroy();
    root.destroy();
  });
});

describe('internal messages', () => {
  it('an unsealed or malformed append is dropped and audited; the trail goes on and the forged events are nowhere', async () => {
    const trailId = auditTrailWorkflowId('eu');
    const forgedId = `forged/${randomUUID()}/1`;
    const forgedEvent = {
      id: forgedId,
      at: new Date().toISOString(),
      jurisdiction: 'eu',
      principal: { id: 'Demo DPO', role: 'dpo' },
      action: 'key.destroyed',
      outcome: 'success',
      targets: {},
      details: {},
    };
    const before = new Date().toISOString();
    // With the real CLI: one valid-looking event and one that is no event at all.
    const signalled = await temporalCli(
      'workflow',
      'signal',
      '-w',
      trailId,
      '--name',
      appendAuditEventsSignal.name,
      '--input',
      JSON.stringify([forgedEvent, { action: 'not-an-action' }]),
    );
    expect(signalled.code, signalled.stderr).toBe(0);
    // With the SDK: the same event in a message that looks sealed, and a message from another jurisdiction's key.
    const attacker = payloadKeyOnlyClient();
    await attacker.workflow.getHandle(trailId).signal(
      appendAuditEventsSignal.name,
      forgedMessage({
        kind: 'audit.append',
        to: trailId,
        body: [forgedEvent],
        from: { workflowId: 'forged', runId: forgedId.split('/')[1]! },
      }),
    );
    const usKey = await jurisdictionMessageKey(clients().keys, 'us');
    await attacker.workflow.getHandle(trailId).signal(
      appendAuditEventsSignal.name,
      sealMessage(usKey, {
        kind: 'audit.append',
        jurisdiction: 'eu',
        from: { workflowId: 'forged', runId: forgedId.split('/')[1]! },
        to: trailId,
        id: forgedId,
        issuedAt: new Date().toISOString(),
        body: [forgedEvent],
      }),
    );
    // Refusals of one reason that arrive together are one event, with their count.
    const refused = await until('three refusals', async () => {
      const events = await eventsOf(
        'eu',
        (e) => e.action === 'message.refused' && e.at >= before && e.workflow?.workflowId === trailId,
      );
      return events.reduce((n, e) => n + Number(e.details.messages), 0) >= 3 ? events : undefined;
    });
    const byReason = new Map<string, number>();
    for (const e of refused) byReason.set(e.reason!, (byReason.get(e.reason!) ?? 0) + Number(e.details.messages));
    expect(Object.fromEntries(byReason)).toEqual({
      'not a sealed Steward message': 1,
      'the seal does not verify: the message was not sealed by a worker of eu, or was altered': 2,
    });
    expect(refused.every((e) => e.principal === null && e.outcome === 'denied')).toBe(true);
    const all = await sealedEvents(clients(), 'eu');
    expect(all.some((e) => e.event.id === forgedId)).toBe(false);
    expect((await clients().client.workflow.getHandle(trailId).describe()).status.name).toBe('RUNNING');
    // The trail still seals what Steward itself sends.
    const rotated = await clients().client.workflow.execute<typeof rotateStudyKeyWorkflow>('rotateStudyKeyWorkflow', {
      args: [
        signedBy('steward', {
          action: 'keys.rotate',
          jurisdiction: 'eu',
          params: { jurisdiction: 'eu', studyId: 'ST-SEC-AFTER' },
        }),
      ],
      taskQueue: ingestTaskQueue('eu'),
      workflowId: `test-after-forgery-${randomUUID()}`,
    });
    expect(rotated.studyId).toBe('ST-SEC-AFTER');
  });

  it('a forged catalog change is refused and audited, a replayed sealed one is applied once, and the catalog holds', async () => {
    const study = `ST-SEC-CAT-${randomUUID().slice(0, 8)}`;
    const { s3, keys } = clients();
    const vaultKey = await keys.vaultKey('eu', study);
    const tokens = ['a', 'b', 'c'].map((c) => `v1.${c.repeat(43)}`);
    const datasetId = `ds-eu-${'1'.repeat(24)}`;
    await s3.send(
      new PutObjectCommand({
        Bucket: eu.buckets.catalog,
        Key: `vault/${study}/${datasetId}.json`,
        Body: JSON.stringify({
          format: 'steward-vault/1',
          jurisdiction: 'eu',
          studyId: study,
          datasetId,
          keyId: vaultKey.id,
          entries: Object.fromEntries(tokens.map((t, i) => [t, sealIdentifier(vaultKey, t, `S-${i}`)])),
        }),
      }),
    );
    const writerId = catalogWriterWorkflowId('eu', `vault/${study}`);
    const attacker = payloadKeyOnlyClient();
    const before = new Date().toISOString();
    const send = (message: unknown) =>
      attacker.workflow.signalWithStart('catalogWriterWorkflow', {
        workflowId: writerId,
        taskQueue: ingestTaskQueue('eu'),
        args: [{ jurisdiction: 'eu', target: `vault/${study}` }],
        signal: applyCatalogMutationSignal.name,
        signalArgs: [message],
      });
    // The old, unsealed form; then one that looks sealed.
    await send({
      requestId: randomUUID(),
      replyTo: 'x',
      mutation: { kind: 'vault.entries-destroyed', studyId: study, tokens: [tokens[0]] },
    });
    await send(
      forgedMessage({
        kind: 'catalog.change',
        to: writerId,
        body: { mutation: { kind: 'vault.entries-destroyed', studyId: study, tokens: [tokens[1]] } },
      }),
    );
    const refused = await until('two refused changes', async () => {
      const events = await eventsOf(
        'eu',
        (e) => e.action === 'message.refused' && e.at >= before && e.workflow?.workflowId === writerId,
      );
      return events.reduce((n, e) => n + Number(e.details.messages), 0) >= 2 ? events : undefined;
    });
    expect(refused.every((e) => e.details.signal === applyCatalogMutationSignal.name)).toBe(true);
    const entries = async () =>
      Object.keys((await readVaultShards(s3, eu.buckets.catalog, study))[0]!.shard.entries).sort();
    expect(await entries()).toEqual([...tokens].sort());

    // A genuinely sealed change, captured (from a history, say) and sent twice: applied once, the copy dropped.
    const sealed = sealMessage(await jurisdictionMessageKey(keys, 'eu'), {
      kind: 'catalog.change',
      jurisdiction: 'eu',
      from: { workflowId: 'test-capture', runId: randomUUID() },
      to: writerId,
      id: randomUUID(),
      issuedAt: new Date().toISOString(),
      body: { mutation: { kind: 'vault.entries-destroyed', studyId: study, tokens: [tokens[2]] } },
    });
    await send(sealed);
    await send(sealed);
    const handle = clients().client.workflow.getHandle(writerId);
    await until('the sealed change', async () =>
      (await handle.query(catalogWriterStatusQuery)).applied >= 1 ? true : undefined,
    );
    await new Promise((r) => setTimeout(r, 2000));
    expect(await handle.query(catalogWriterStatusQuery)).toEqual({ applied: 1, queued: 0 });
    expect(await entries()).toEqual([tokens[0], tokens[1]].sort());
  });
});

describe('payloads', () => {
  it('a clear or doubly encrypted input fails its workflow as InvalidInput at once, and a clear signal is refused', async () => {
    const study = 'ST-SEC-CLEAR';
    const input = signedBy('steward', {
      action: 'keys.rotate',
      jurisdiction: 'eu',
      params: { jurisdiction: 'eu', studyId: study },
    });
    const clear = `test-clear-input-${randomUUID()}`;
    const started = await temporalPlain(
      'workflow',
      'start',
      '--type',
      'rotateStudyKeyWorkflow',
      '--task-queue',
      ingestTaskQueue('eu'),
      '-w',
      clear,
      '--input',
      JSON.stringify(input),
    );
    expect(started.code, started.stderr).toBe(0);
    const twice = `test-double-input-${randomUUID()}`;
    const codec = new AesGcmPayloadCodec(clients().keys);
    const doubled = new Client({
      connection: clients().client.connection,
      namespace: stackState().temporal.namespace,
      dataConverter: { payloadCodecs: [codec, codec] },
    });
    await doubled.workflow.start('rotateStudyKeyWorkflow', {
      args: [input],
      taskQueue: ingestTaskQueue('eu'),
      workflowId: twice,
    });
    for (const workflowId of [clear, twice]) {
      const error = await failureOf(clients().client.workflow.getHandle(workflowId).result());
      expect(failureChain(error)).toEqual(['WorkflowFailedError', 'ApplicationFailure(InvalidInput)']);
    }
    expect(await clients().keys.studyKeyVersions('eu', study)).toEqual([]);

    const before = new Date().toISOString();
    const trailId = auditTrailWorkflowId('eu');
    const signalled = await temporalPlain(
      'workflow',
      'signal',
      '-w',
      trailId,
      '--name',
      appendAuditEventsSignal.name,
      '--input',
      '[]',
    );
    expect(signalled.code, signalled.stderr).toBe(0);
    await until('the refusal', async () => {
      const events = await eventsOf(
        'eu',
        (e) => e.action === 'message.refused' && e.at >= before && e.reason === 'not a sealed Steward message',
      );
      return events.length > 0 ? events : undefined;
    });
    expect((await clients().client.workflow.getHandle(trailId).describe()).status.name).toBe('RUNNING');
  });
});

describe('codec grants', () => {
  it('the audit trail names a grant by its fingerprint, never by the id that opens it', async () => {
    const grantsDir = path.join(stackState().dataDir, 'codec', 'grants');
    const ids = (await readdir(grantsDir)).map((f) => f.replace(/\.json$/, ''));
    expect(ids.length).toBeGreaterThan(0);
    const events = [...(await sealedEvents(clients(), 'eu')), ...(await sealedEvents(clients(), 'us'))];
    const text = JSON.stringify(events);
    for (const id of ids) expect(text).not.toContain(id);
    const granted = events.filter((e) => e.event.action === 'codec.granted');
    expect(granted.length).toBeGreaterThan(0);
    expect(granted.map((e) => e.event.details.grant)).toContain(grantFingerprint(ids[0]!));
  });
});
