import path from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { ingestTaskQueue, keyRotationWorkflowId } from '../../contracts';
import { getJurisdiction } from '../../jurisdictions';
import type { AuditEvent } from '../../schemas/audit';
import type { SignedWorkflowInput } from '../../schemas/request';
import type { destroyStudyKeyWorkflow, queryAuditWorkflow, rotateStudyKeyWorkflow } from '../../workflows';
import { generateDemoPackage } from '../../cli/demo/generate';
import { verifyTrail } from '../../lib/audit/segment';
import { listSegmentSeqs, readSegment } from '../../lib/audit/store';
import { signRequest } from '../../lib/auth/request';
import { flushAudit } from '../../lib/client/audit';
import {
  auditReferenceProblem,
  certificateBundleKey,
  certificateKeys,
  checkCertificate,
} from '../../lib/evidence/certificate';
import { getObjectOrUndefined } from '../../lib/storage/objects';
import { tokenize } from '../../lib/crypto/pseudonymize';
import { FileKeyStore } from '../../lib/crypto/keystore';
import { StewardAuthority } from '../../lib/pki/authority';
import { openIdentity, writeIdentity } from '../../lib/pki/identity';
import { readLocalPackage, submitPackage } from '../../lib/client/submit';
import {
  identity,
  importConsentCsv,
  signedBy,
  smallMetadata,
  stackSteward,
  tempDir,
  writeJsonPackage,
  type DemoRole,
} from '../helpers';
import { failureOf, rootApplicationFailure, sealedEvents, useClients } from '../harness';

const clients = useClients();
const eu = getJurisdiction('eu');

/** The sealed events one workflow recorded, in chain order. */
async function eventsOf(workflowId: string): Promise<AuditEvent[]> {
  return (await sealedEvents(clients(), 'eu')).map((e) => e.event).filter((e) => e.workflow?.workflowId === workflowId);
}

function rotateWith(input: SignedWorkflowInput, workflowId = keyRotationWorkflowId('eu', 'ST-SIGNED', randomUUID())) {
  return {
    workflowId,
    run: clients().client.workflow.execute<typeof rotateStudyKeyWorkflow>('rotateStudyKeyWorkflow', {
      args: [input],
      taskQueue: ingestTaskQueue('eu'),
      workflowId,
    }),
  };
}

function rotationRequest(overrides: Partial<Parameters<typeof signRequest>[1]> = {}) {
  return {
    requestId: randomUUID(),
    action: 'keys.rotate' as const,
    jurisdiction: 'eu',
    issuedAt: new Date().toISOString(),
    params: { jurisdiction: 'eu', studyId: 'ST-SIGNED' },
    ...overrides,
  };
}

describe('audit trail of an ingestion', () => {
  it('records every step, by the verified signer, and answers who, what, when and why', async () => {
    const out = await tempDir();
    const generated = await generateDemoPackage({
      out,
      jurisdiction: 'eu',
      studyId: 'ST-TRAIL',
      rows: 300,
      subjects: 30,
      seed: 51,
    });
    await importConsentCsv(clients(), await readFile(generated.consentFile, 'utf8'), 'eu', 'ST-TRAIL');
    const pkg = await readLocalPackage(generated.packageDir);
    const { handle } = await submitPackage(
      { client: clients().client, s3: clients().s3, identity: identity('steward') },
      pkg,
    );
    const result = await handle.result();

    const events = await eventsOf(handle.workflowId);
    expect(events.map((e) => e.action)).toEqual([
      'package.submitted',
      'package.verified',
      'key.used',
      'package.curated',
      'object.written',
      'object.written',
      'object.written',
      'object.written',
      'dataset.recorded',
    ]);
    for (const e of events) {
      expect(e.principal).toMatchObject({
        id: 'Demo Steward',
        role: 'steward',
        serial: identity('steward').info.serial,
      });
      expect(e.targets.datasetId).toBe(result.datasetId);
      expect(e.outcome).toBe('success');
    }
    const written = events.filter((e) => e.action === 'object.written').flatMap((e) => e.targets.objects ?? []);
    expect(written.map((o) => o.versionId).sort()).toEqual(result.record.outputs.map((o) => o.versionId).sort());

    // An auditor asks by dataset, by actor, by time; a DPO asks by a subject's real identifier.
    const query = (role: DemoRole, params: Record<string, unknown>) =>
      clients().client.workflow.execute<typeof queryAuditWorkflow>('queryAuditWorkflow', {
        args: [signedBy(role, { action: 'audit.query', jurisdiction: 'eu', params })],
        taskQueue: ingestTaskQueue('eu'),
        workflowId: `test-audit-query-${randomUUID()}`,
      });
    await flushAudit(clients().client, 'eu');
    const byDataset = await query('auditor', { datasetId: result.datasetId });
    expect(byDataset.events.map((e) => e.event.id)).toEqual(events.map((e) => e.id));
    const since = events[0]!.at;
    const byActorAndTime = await query('auditor', { actor: 'Demo Steward', since, action: 'dataset.recorded' });
    expect(byActorAndTime.events.map((e) => e.event.targets.datasetId)).toContain(result.datasetId);
    expect(byActorAndTime.events.every((e) => e.event.at >= since && e.event.principal?.id === 'Demo Steward')).toBe(
      true,
    );

    // A withdrawal records the subject's token; a query by the real identifier finds it without echoing it.
    const subjectId = (await readFile(path.join(generated.packageDir, 'data', 'subjects.csv'), 'utf8'))
      .split('\n')[1]!
      .split(',')[0]!;
    await clients().client.workflow.execute('withdrawConsentWorkflow', {
      args: [
        signedBy('dpo', {
          action: 'consent.withdraw',
          jurisdiction: 'eu',
          params: { jurisdiction: 'eu', studyId: 'ST-TRAIL', subjectId, scopes: [], reason: 'asked at the site visit' },
        }),
      ],
      taskQueue: ingestTaskQueue('eu'),
      workflowId: `test-withdraw-${randomUUID()}`,
    });
    await flushAudit(clients().client, 'eu');
    const bySubject = await query('dpo', { subject: subjectId, studyId: 'ST-TRAIL' });
    expect(bySubject.events.map((e) => [e.event.action, e.event.reason])).toEqual([
      ['consent.withdrawn', 'asked at the site visit'],
    ]);
    const key = await clients().keys.studyKey('eu', 'ST-TRAIL');
    expect(bySubject.subjectTokens).toEqual([tokenize(key.material, key.version, subjectId)]);
    expect(JSON.stringify(await sealedEvents(clients(), 'eu'))).not.toContain(subjectId);

    const denied = await failureOf(query('ops', { datasetId: result.datasetId }));
    expect(rootApplicationFailure(denied).message).toBe(
      'access denied: Demo Ops (role ops) may not audit.query; allowed roles: auditor, dpo',
    );
  });
});

describe('signed requests', () => {
  it('refuses a bad signature, a wrong role, an expired or revoked identity, a foreign CA and a replay, and audits each', async () => {
    const steward = identity('steward');
    const pkiDir = path.join(clients().state.dataDir, 'pki');
    const authority = await StewardAuthority.open(pkiDir, clients().keys);

    const genuine = signRequest(steward, rotationRequest());
    const forged = { request: { ...genuine, body: genuine.body.replace('ST-SIGNED', 'ST-OTHER') } };
    const wrongRole = { request: signRequest(identity('auditor'), rotationRequest()) };
    const stale = {
      request: signRequest(steward, rotationRequest({ issuedAt: new Date(Date.now() - 3600_000).toISOString() })),
    };

    const revokedIssued = await authority.issue('Rita Revoked', 'steward', 30);
    const revokedDir = path.join(await tempDir(), 'rita');
    await writeIdentity(revokedDir, { ...revokedIssued, caPem: authority.caPem() }, 'rita passphrase');
    await authority.revoke(revokedIssued.info.serial, 'badge returned', new Date());
    const revoked = { request: signRequest(openIdentity(revokedDir, 'rita passphrase'), rotationRequest()) };

    const foreign = await StewardAuthority.open(
      path.join(await tempDir(), 'pki'),
      await FileKeyStore.open(await tempDir()),
    );
    const malloryIssued = await foreign.issue('Mallory', 'steward', 30);
    const malloryDir = path.join(await tempDir(), 'mallory');
    await writeIdentity(malloryDir, { ...malloryIssued, caPem: foreign.caPem() }, 'mallory passphrase');
    const foreignCa = { request: signRequest(openIdentity(malloryDir, 'mallory passphrase'), rotationRequest()) };

    const first = rotateWith({ request: genuine });
    expect(await first.run).toMatchObject({ studyId: 'ST-SIGNED' });
    const replayed = rotateWith({ request: genuine });

    const refusals: Record<string, { workflowId: string; run: Promise<unknown> }> = {
      forged: rotateWith(forged),
      wrongRole: rotateWith(wrongRole),
      stale: rotateWith(stale),
      revoked: rotateWith(revoked),
      foreignCa: rotateWith(foreignCa),
      replayed,
    };
    // Every refusal is awaited at once, so none rejects before a handler is attached.
    const reasons = Object.fromEntries(
      await Promise.all(
        Object.entries(refusals).map(
          async ([name, attempt]) => [name, rootApplicationFailure(await failureOf(attempt.run)).message] as const,
        ),
      ),
    );
    expect(reasons).toEqual({
      forged: 'the signature does not verify: the request was altered or signed by another key',
      wrongRole: 'access denied: Demo Auditor (role auditor) may not keys.rotate; allowed roles: steward',
      stale: expect.stringMatching(/^the request was signed at .*: too old to act on \(replayed\?\)$/),
      revoked: `the certificate ${revokedIssued.info.serial} is revoked`,
      foreignCa: 'the certificate was not issued by the Steward CA',
      replayed: expect.stringMatching(
        new RegExp(
          `^request [0-9a-f-]{36} was already used by workflow ${first.workflowId} run [0-9a-f-]{36}: a replayed request is refused$`,
        ),
      ),
    });
    for (const [name, attempt] of Object.entries(refusals)) {
      const events = await eventsOf(attempt.workflowId);
      expect(
        events.map((e) => [e.action, e.outcome, e.reason]),
        name,
      ).toEqual([['request.denied', 'denied', reasons[name]]]);
    }
    expect((await eventsOf(refusals.revoked!.workflowId))[0]!.principal).toMatchObject({
      id: 'Rita Revoked',
      role: 'steward',
    });
    // The key was rotated once, by the genuine request only.
    expect((await clients().keys.studyKeyVersions('eu', 'ST-SIGNED')).map((k) => k.version)).toEqual([1, 2]);
  });
});

describe('concurrency', () => {
  it('20 concurrent ingestions leave a trail that verifies, with every event present exactly once', async () => {
    await importConsentCsv(
      clients(),
      `subject_id,scopes,status,icf_version,given_on\n${Array.from({ length: 20 }, (_, i) => `Q-${i},primary-research,given,v1,2024-01-01`).join('\n')}\n`,
      'eu',
      'ST-TWENTY',
    );
    const packages = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const dir = await tempDir();
        await writeJsonPackage(dir, smallMetadata({ studyId: 'ST-TWENTY' }), {
          'data/visits.csv': `subject_id,full_name,visit_date,score,note\nQ-${i},N ${i},2025-01-02,${i},\n`,
        });
        return readLocalPackage(dir);
      }),
    );
    const handles = await Promise.all(
      packages.map(
        async (pkg) =>
          (await submitPackage({ client: clients().client, s3: clients().s3, identity: identity('steward') }, pkg))
            .handle,
      ),
    );
    await Promise.all(handles.map((h) => h.result()));
    await flushAudit(clients().client, 'eu');
    const bucket = eu.buckets.evidence;
    const stored = new Map<number, unknown>();
    for (const seq of await listSegmentSeqs(clients().s3, bucket))
      stored.set(seq, await readSegment(clients().s3, bucket, seq));
    const report = verifyTrail(stored, await readFile(path.join(clients().state.dataDir, 'pki', 'ca.pem'), 'utf8'));
    expect(report.problems).toEqual([]);
    const all = (await sealedEvents(clients(), 'eu')).map((e) => e.event);
    for (const handle of handles) {
      const mine = all.filter((e) => e.workflow?.workflowId === handle.workflowId);
      expect(
        mine.map((e) => e.action),
        handle.workflowId,
      ).toEqual([
        'package.submitted',
        'package.verified',
        'key.used',
        'package.curated',
        'object.written',
        'dataset.recorded',
      ]);
    }
    expect(new Set(all.map((e) => e.id)).size).toBe(all.length);
  });
});

describe('deletion certificates', () => {
  it('a destroyed key version gets a certificate that verifies, cites its sealed audit event, and fails when changed', async () => {
    const study = 'ST-CERT';
    await clients().keys.studyKey('eu', study);
    const rotate = rotateWith(
      signedBy('steward', {
        action: 'keys.rotate',
        jurisdiction: 'eu',
        params: { jurisdiction: 'eu', studyId: study },
      }),
    );
    await rotate.run;
    const result = await clients().client.workflow.execute<typeof destroyStudyKeyWorkflow>('destroyStudyKeyWorkflow', {
      args: [
        signedBy('dpo', {
          action: 'keys.destroy',
          jurisdiction: 'eu',
          params: { jurisdiction: 'eu', studyId: study, version: 1 },
          meaning: 'approve cryptographic erase of study/eu/ST-CERT/v1',
        }),
      ],
      taskQueue: ingestTaskQueue('eu'),
      workflowId: `test-destroy-${randomUUID()}`,
    });
    await expect(clients().keys.studyKeyVersion('eu', study, 1)).rejects.toThrow(
      'key study/eu/ST-CERT/v1 was destroyed',
    );

    const keys = certificateKeys(result.certificateId);
    const json = (await getObjectOrUndefined(clients().s3, eu.buckets.evidence, keys.json))!;
    const p7s = (await getObjectOrUndefined(clients().s3, eu.buckets.evidence, keys.p7s))!;
    const caPem = await readFile(path.join(clients().state.dataDir, 'pki', 'ca.pem'), 'utf8');
    const { certificate, problems } = checkCertificate(json, p7s, caPem);
    expect(problems).toEqual([]);
    expect(certificate).toMatchObject({
      jurisdiction: 'eu',
      reason: { kind: 'key-destruction' },
      requestedBy: {
        printedName: 'Demo DPO',
        role: 'dpo',
        meaning: 'approve cryptographic erase of study/eu/ST-CERT/v1',
      },
      sanitized: { keys: [{ keyId: 'study/eu/ST-CERT/v1', version: 1 }] },
      method: { category: 'Purge', keyIdsDestroyed: ['study/eu/ST-CERT/v1'] },
      verification: { result: 'passed' },
    });
    const segment = await readSegment(clients().s3, eu.buckets.evidence, certificate!.auditChain.segment);
    expect(auditReferenceProblem(certificate!, segment)).toBeUndefined();

    const changed = Buffer.from(json.toString('utf8').replace('"passed"', '"failed"'));
    expect(checkCertificate(changed, p7s, caPem).problems).toEqual([
      'signature: the content does not match the signed message digest: it was changed after signing',
    ]);
  });

  it('a truncated certificate bundle fails `steward cert verify` with exit 7, naming the bundle', async () => {
    const certificateId = `cert-eu-${randomBytes(16).toString('hex')}`;
    const key = certificateBundleKey(certificateId)!;
    const bundle = JSON.stringify({
      format: 'steward-certificate-bundle/1',
      certificates: [{ certificateId, json: Buffer.from('{}').toString('base64'), p7s: 'AAAA' }],
    });
    await clients().s3.send(
      new PutObjectCommand({ Bucket: eu.buckets.evidence, Key: key, Body: bundle.slice(0, bundle.length / 2) }),
    );
    const verified = stackSteward('cert', 'verify', certificateId);
    expect({ code: verified.code, stderr: verified.stderr }).toEqual({
      code: 7,
      stderr: `steward: s3://${eu.buckets.evidence}/${key}: the certificate bundle is not JSON (truncated or changed after it was written)\n`,
    });
  });
});
