import { randomUUID } from 'node:crypto';
import { appendFile, chmod, copyFile, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  DeleteBucketPolicyCommand,
  GetBucketPolicyCommand,
  PutBucketPolicyCommand,
  PutBucketVersioningCommand,
} from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import {
  functionalTestsUpdate,
  ingestTaskQueue,
  qaSignUpdate,
  qualificationStatusQuery,
  qualificationWorkflowId,
} from '../../contracts';
import { getJurisdiction } from '../../jurisdictions';
import { signDetached } from '../../lib/pki/cms';
import { createS3Client } from '../../lib/storage/s3';
import { INSTALL_ROOT } from '../../lib/runtime/install';
import { ReportContentSchema } from '../../schemas/qualification';
import { ensureTool } from '../../lib/stack/tools';
import {
  cleanVerdict,
  identity,
  opensslCmsVerify,
  recordBaseline,
  sha256,
  signedBy,
  stackState,
  stackSteward,
  tempDir,
  type DemoRole,
} from '../helpers';
import { expectDenied, refusal, sealedEvents, useClients } from '../harness';
import { listObjects } from '../../lib/storage/objects';
import { listDatasetRecords } from '../../lib/storage/catalog';

// Installation qualification (IQ) against the suite's live stack: a baseline recorded and approved by QA, a signed
// report that OpenSSL and `qualify verify` accept, and each kind of drift from the baseline making it NOT QUALIFIED
// with its cause named.

const clients = useClients();
const eu = getJurisdiction('eu');
const as = (role: DemoRole) => path.join(stackState().dataDir, 'identities', role);

function qualify(...extra: string[]) {
  const run = stackSteward('--identity', as('qa'), '--json', 'qualify', '--jurisdiction', 'eu', ...extra);
  if (run.code !== 0 && run.code !== 1) throw new Error(`steward qualify failed (${run.code}): ${run.stderr}`);
  return { code: run.code, result: JSON.parse(run.stdout) as { document: string; verdict: string; signed: boolean } };
}

async function storedReport(reportId: string) {
  const dir = await tempDir('steward-qr-');
  const verified = stackSteward('qualify', 'verify', reportId, '--jurisdiction', 'eu', '--out', dir);
  if (verified.code !== 0 && verified.code !== 1 && verified.code !== 7) {
    throw new Error(`steward qualify verify failed (${verified.code}): ${verified.stderr}`);
  }
  return {
    dir,
    verified,
    report: ReportContentSchema.parse(JSON.parse(await readFile(path.join(dir, 'report.json'), 'utf8'))),
  };
}

function root() {
  const state = stackState();
  return createS3Client(state.s3);
}

describe('steward qualify --phase iq', () => {
  it('records a baseline, then qualifies the live stack with a report signed by QA that OpenSSL verifies', async () => {
    const before = recordBaseline('eu', 'suite installation');
    expect(before.stdout).toMatch(/baseline \d+ of eu approved and in force/);
    const shown = stackSteward('baseline', 'show', '--jurisdiction', 'eu');
    expect(shown.stdout).toContain('approved by Demo QA (qa)');
    expect(shown.stdout).toContain('meaning: approve configuration baseline');

    const { code, result } = qualify();
    expect(result.verdict).toBe(cleanVerdict());
    expect(code).toBe(0);
    expect(result.signed).toBe(true);
    const { dir, verified, report } = await storedReport(result.document);
    expect(verified.code, verified.stdout).toBe(0);
    expect(verified.stdout).toContain('signature: valid, by QA');
    // Every IQ requirement of the file is traced to a check that passed, with evidence.
    expect(report.requirements.map((r) => r.id)).toEqual(
      expect.arrayContaining(['IQ-01', 'IQ-02', 'IQ-03', 'IQ-04', 'IQ-05', 'IQ-06', 'IQ-07', 'IQ-08', 'IQ-09']),
    );
    expect(report.requirements.every((r) => r.outcome === 'passed')).toBe(true);
    expect(report.checks.every((c) => c.evidence !== null && c.findings.length === 0)).toBe(true);
    expect(report.checks.find((c) => c.id === 'iq.buckets')!.items).toBeGreaterThanOrEqual(12);
    // The 11.50 manifestation: printed name, time, meaning.
    const approval = JSON.parse(await readFile(path.join(dir, 'approval.json'), 'utf8'));
    expect(approval.eSignature).toMatchObject({ printedName: 'Demo QA', role: 'qa' });
    expect(approval.eSignature.meaning).toMatch(/^approve qualification/);
    const html = await readFile(path.join(dir, 'report.html'), 'utf8');
    expect(html).toContain(result.verdict);
    expect(html).toContain('Demo QA');
    const openssl = opensslCmsVerify({
      p7s: path.join(dir, 'report.p7s'),
      content: path.join(dir, 'report.json'),
      ca: path.join(dir, 'ca.pem'),
    });
    expect(openssl.status, openssl.stderr).toBe(0);
    const events = await sealedEvents(clients(), 'eu');
    expect(
      events.some((e) => e.event.action === 'qualification.completed' && e.event.details.reportId === result.document),
    ).toBe(true);
    expect(events.some((e) => e.event.action === 'baseline.approved')).toBe(true);

    // A tampered report or evidence item is NOT QUALIFIED.
    const reportFile = path.join(dir, 'report.json');
    const original = await readFile(reportFile, 'utf8');
    await writeFile(
      reportFile,
      original.replace(/"verdict": "[A-Z ]+"/, '"verdict": "QUALIFIED"').replace('"passed"', '"passed" '),
    );
    const tampered = stackSteward('qualify', 'verify', '--dir', dir);
    expect(tampered.code).toBe(7);
    expect(tampered.stdout).toMatch(/^NOT QUALIFIED/);
    await writeFile(reportFile, original);
    const evidence = path.join(dir, 'evidence', 'iq.buckets.json');
    await appendFile(evidence, ' ');
    const forged = stackSteward('qualify', 'verify', '--dir', dir);
    expect(forged.code).toBe(7);
    expect(forged.stdout).toContain('evidence qualification/reports/');
    expect(forged.stdout).toContain('iq.buckets.json has SHA-256');
  });

  it('is NOT QUALIFIED, naming the cause, for a bucket with versioning off, a removed policy, an edited jurisdiction file', async () => {
    const s3 = root();
    const bucket = eu.buckets.landing;
    await s3.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Suspended' } }));
    try {
      const { code, result } = qualify();
      expect(code).toBe(1);
      expect(result.verdict).toBe('NOT QUALIFIED');
      const { report } = await storedReport(result.document);
      expect(report.causes).toContain(`iq.buckets: bucket ${bucket} has versioning enabled: found Suspended`);
      expect(report.requirements.find((r) => r.id === 'IQ-05')!.outcome).toBe('failed');
    } finally {
      await s3.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
    }

    const policy = (await s3.send(new GetBucketPolicyCommand({ Bucket: bucket }))).Policy!;
    await s3.send(new DeleteBucketPolicyCommand({ Bucket: bucket }));
    try {
      const { result } = qualify();
      expect(result.verdict).toBe('NOT QUALIFIED');
      const { report } = await storedReport(result.document);
      expect(report.causes).toContain(`iq.policies: bucket ${bucket} has a bucket policy: none found`);
      expect(
        report.causes.some((c) => c.startsWith(`iq.policies: ${bucket} policy SHA-256 (policy.${bucket}) of baseline`)),
      ).toBe(true);
    } finally {
      await s3.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: policy }));
    }

    const file = path.join(INSTALL_ROOT, 'jurisdictions', 'eu.json');
    const text = await readFile(file, 'utf8');
    await writeFile(file, `${text}\n`);
    try {
      const { result } = qualify();
      expect(result.verdict).toBe('NOT QUALIFIED');
      const { report } = await storedReport(result.document);
      expect(
        report.causes.some((c) =>
          c.startsWith(
            'iq.controlled-files: jurisdictions/eu.json SHA-256 (file.jurisdictions/eu.json) differs from baseline',
          ),
        ),
      ).toBe(true);
    } finally {
      await writeFile(file, text);
    }

    // Restored, the stack qualifies again.
    expect(qualify().result.verdict).toBe(cleanVerdict());
  });

  it('is NOT QUALIFIED, naming the cause, when the versitygw binary at its path is not the one the baseline records', async () => {
    recordBaseline('eu', 'before binary swap');
    const bin = await ensureTool('versitygw');
    const kept = `${bin}.qualification-test`;
    const before = sha256(await readFile(bin));
    // The running server keeps its file; the path now holds another build (one more byte).
    await rename(bin, kept);
    try {
      await copyFile(kept, bin);
      await appendFile(bin, Buffer.from([0]));
      await chmod(bin, 0o755);
      const after = sha256(await readFile(bin));
      const { code, result } = qualify();
      expect(code).toBe(1);
      const { report } = await storedReport(result.document);
      expect(report.causes).toEqual(
        expect.arrayContaining([
          expect.stringMatching(
            new RegExp(
              `^iq\\.tools: versitygw binary SHA-256 \\(tool\\.versitygw\\.sha256\\) differs from baseline \\d+: ${before} → ${after}$`,
            ),
          ),
        ]),
      );
      expect(report.requirements.find((r) => r.id === 'IQ-01')!.outcome).toBe('failed');
    } finally {
      await rm(bin, { force: true });
      await rename(kept, bin);
    }
    expect(sha256(await readFile(bin))).toBe(before);
  });

  it('refuses, as Temporal is called directly, a start by another role and a signature by anyone but QA', async () => {
    const { client } = clients();
    const start = (role: DemoRole, requestId = randomUUID()) =>
      client.workflow.start('qualifyWorkflow', {
        args: [signedBy(role, { action: 'qualify.run', jurisdiction: 'eu', params: { phase: 'iq' }, requestId })],
        taskQueue: ingestTaskQueue('eu'),
        workflowId: qualificationWorkflowId('eu', requestId),
      });
    const denied = await expectDenied((await start('steward')).result());
    expect(denied).toContain('may not qualify.run');

    // A run QA started, holding its report for signature.
    const handle = await start('qa');
    let status = await handle.query(qualificationStatusQuery).catch(() => undefined);
    for (let i = 0; i < 120 && status?.stage !== 'awaiting-signature'; i++) {
      await new Promise((r) => setTimeout(r, 500));
      status = await handle.query(qualificationStatusQuery).catch(() => undefined);
    }
    expect(status?.stage).toBe('awaiting-signature');
    const content = Buffer.from(status!.content!, 'base64');
    const signFor = (role: DemoRole, signer: DemoRole) => {
      const who = identity(signer);
      const p7s = signDetached(
        content,
        {
          certificatePem: who.certificatePem,
          privateKeyPem: who.key.export({ type: 'pkcs8', format: 'pem' }).toString(),
        },
        [],
      );
      return signedBy(role, {
        action: 'qualify.sign',
        jurisdiction: 'eu',
        params: { document: status!.document, sha256: status!.sha256, p7s: p7s.toString('base64') },
        meaning: 'approve qualification',
      });
    };
    // The DPO may not sign; QA's approval carrying another person's CMS signature is refused and audited.
    const byDpo = await refusal(handle.executeUpdate(qaSignUpdate, { args: [signFor('dpo', 'dpo')] }));
    expect(byDpo.message).toMatch(/may not qualify.sign/);
    const notQa = await refusal(handle.executeUpdate(qaSignUpdate, { args: [signFor('qa', 'steward')] }));
    expect(notQa).toMatchObject({
      type: 'AccessDenied',
      message: expect.stringMatching(/QA signature refused: .*not by QA/),
    });
    // A signed approval used twice is a replay.
    const good = signFor('qa', 'qa');
    const signed = await handle.executeUpdate(qaSignUpdate, { args: [good] });
    expect(signed.stage).toBe('signed');
    // A signed approval used again is refused: the run it signed is over.
    await expect(handle.executeUpdate(qaSignUpdate, { args: [good] })).rejects.toThrow(/already completed/);
    const result = await handle.result();
    expect(result.signed).toBe(true);
    const events = await sealedEvents(clients(), 'eu');
    expect(events.some((e) => e.event.action === 'request.denied' && e.event.details.requested === 'qualify.run')).toBe(
      true,
    );
    expect(
      events.some((e) => e.event.action === 'request.denied' && e.event.details.requested === 'qualify.sign'),
    ).toBe(true);
    expect(events.some((e) => e.event.action === 'qa-signature.refused')).toBe(true);
  });
});

describe('steward qualify --phase oq|pq|all', () => {
  it('qualifies the live stack in every phase: refused requests, residency, audit trail, certificates, replay, pipelines', async () => {
    recordBaseline('eu', 'before the operational qualification');
    const { code, result } = qualify('--phase', 'all');
    const { report } = await storedReport(result.document);
    expect(report.causes).toEqual(cleanVerdict() === 'QUALIFIED' ? [] : [expect.stringMatching(/uncommitted changes/)]);
    expect(result.verdict).toBe(cleanVerdict());
    expect(code).toBe(0);
    expect(report.phases).toEqual(['IQ', 'OQ', 'PQ']);
    const ids = report.requirements.map((r) => r.id);
    expect(ids).toEqual(
      expect.arrayContaining([
        'OQ-01',
        'OQ-02',
        'OQ-03',
        'OQ-04',
        'OQ-05',
        'OQ-06',
        'PQ-01',
        'PQ-02',
        'PQ-03',
        'PQ-04',
      ]),
    );
    expect(report.checks.filter((c) => c.id.startsWith('oq.') || c.id.startsWith('pq.')).length).toBe(10);
    expect(report.checks.every((c) => c.outcome === 'passed' && c.evidence !== null)).toBe(true);
    // The evidence of the trust check holds each refusal, as the refusing workflow gave it.
    const dir = (await storedReport(result.document)).dir;
    const trust = JSON.parse(await readFile(path.join(dir, 'evidence', 'oq.trust.json'), 'utf8'));
    expect(trust.rules.map((r: { detail: string }) => r.detail).join('\n')).toMatch(
      /AccessDenied: .*may not retention\.preview[\s\S]*AccessDenied: .*signature[\s\S]*AccessDenied/,
    );
    // The run's own scratch data, deleted with a certificate that Steward and OpenSSL verify.
    const certificate = JSON.parse(await readFile(path.join(dir, 'evidence', 'oq.certificate.json'), 'utf8'));
    const deleted = certificate.rules[0];
    expect(deleted.rule).toMatch(/scratch data \(2 objects\) is deleted, every version, with a signed certificate/);
    const certificateId = /certificate (cert-eu-[0-9a-f]{32})/.exec(deleted.detail)![1]!;
    expect(certificate.rules[1].rule).toContain(certificateId);
    expect(certificate.rules[1].detail).toContain('OpenSSL: verification successful');
    expect(await listObjects(clients().s3, eu.buckets.landing, `qualification/oq/${result.document}/`)).toEqual([]);
    // The testers' scratch study: curated, rejected, erased, then deleted with certificates.
    const functions = JSON.parse(await readFile(path.join(dir, 'evidence', 'oq.functions.json'), 'utf8'));
    expect(
      functions.rules.map((r: { rule: string; ok: boolean }) => [r.rule.replace(/OQ-[0-9A-F]+/, 'OQ-…'), r.ok]),
    ).toEqual([
      ['a good package of the scratch study is curated into the catalog', true],
      ['a damaged package of the scratch study is rejected and kept in quarantine', true],
      ["a subject's erasure request in the scratch study completes with a certificate", true],
      ['the scratch study OQ-… is deleted (datasets and raw uploads), each with a certificate', true],
    ]);
    const scratchStudy = /scratch study (OQ-[0-9A-F]+)/.exec(functions.rules[3].rule)![1]!;
    const left = await listDatasetRecords(clients().s3, eu.buckets.catalog);
    expect(left.filter((d) => d.studyId === scratchStudy)).toEqual([]);
    const events = await sealedEvents(clients(), 'eu');
    // Refused and audited by the workflows the probes were sent to (the altered one asks for a real sweep).
    const denied = events.filter((e) => e.event.action === 'request.denied').map((e) => e.event.details.requested);
    expect(denied).toEqual(expect.arrayContaining(['retention.preview', 'retention.sweep', 'qualify.run']));
  });

  it('is NOT QUALIFIED when a pipeline or curation output differs from the recorded one or its speed is outside the range', async () => {
    const file = path.join(INSTALL_ROOT, 'qualification', 'requirements.yaml');
    const text = await readFile(file, 'utf8');
    const recorded = /labs-encode@1\.0\.0:\n\s+parameters: .*\n\s+outputSha256: ([0-9a-f]{64})/.exec(text)![1]!;
    const curated = /ingestion:\n\s+outputSha256: ([0-9a-f]{64})/.exec(text)![1]!;
    await writeFile(
      file,
      text
        .replace(recorded, 'f'.repeat(64))
        .replace(curated, 'e'.repeat(64))
        .replace('minRowsPerSecond: 10000', 'minRowsPerSecond: 1000000000'),
    );
    try {
      const { code, result } = qualify('--phase', 'pq');
      expect(code).toBe(1);
      expect(result.verdict).toBe('NOT QUALIFIED');
      const { report } = await storedReport(result.document);
      expect(report.causes).toContain(
        `pq.pipelines: labs-encode@1.0.0 on its reference dataset (20000 rows) gives the recorded output: output SHA-256 ${recorded}, recorded ${'f'.repeat(64)}`,
      );
      expect(
        report.causes.some((c) =>
          /^pq\.throughput: vitals-standardize@1\.0\.0 runs within its acceptance range \(at least 1000000000 rows\/s, at most 20 s\): \d+ rows\/s/.test(
            c,
          ),
        ),
      ).toBe(true);
      expect(report.causes).toContain(
        `pq.ingestion: ingestion's curation of the reference package (20000 rows) gives the recorded output: output SHA-256 ${curated}, recorded ${'e'.repeat(64)}`,
      );
      expect(report.causes.some((c) => c.startsWith("pq.throughput: ingestion's curation runs within"))).toBe(true);
      expect(report.requirements.find((r) => r.id === 'PQ-01')!.outcome).toBe('failed');
      expect(report.requirements.find((r) => r.id === 'PQ-04')!.outcome).toBe('failed');
      expect(report.requirements.find((r) => r.id === 'PQ-03')!.outcome).toBe('passed');
    } finally {
      await writeFile(file, text);
    }
  });

  it('fails the trust and function checks of a run started straight through Temporal without probe or tests', async () => {
    const requestId = randomUUID();
    const handle = await clients().client.workflow.start('qualifyWorkflow', {
      args: [signedBy('qa', { action: 'qualify.run', jurisdiction: 'eu', params: { phase: 'oq' }, requestId })],
      taskQueue: ingestTaskQueue('eu'),
      workflowId: qualificationWorkflowId('eu', requestId),
    });
    const stage = async (wanted: string) => {
      let status = await handle.query(qualificationStatusQuery).catch(() => undefined);
      for (let i = 0; i < 240 && status?.stage !== wanted; i++) {
        await new Promise((r) => setTimeout(r, 500));
        status = await handle.query(qualificationStatusQuery).catch(() => undefined);
      }
      expect(status?.stage).toBe(wanted);
      return status!;
    };
    const waiting = await stage('awaiting-tests');
    const studyId = waiting.document!;
    const report = (params: unknown, signer: DemoRole = 'qa') =>
      signedBy(signer, { action: 'qualify.run', jurisdiction: 'eu', params, meaning: 'report the operational tests' });
    const nothing = { studyId, curated: null, rejected: null, erasure: null, problems: ['not run'] };
    // Only QA reports the tests, and only for the run's own scratch study.
    expect(
      (await refusal(handle.executeUpdate(functionalTestsUpdate, { args: [report(nothing, 'steward')] }))).type,
    ).toBe('AccessDenied');
    expect(
      (
        await refusal(
          handle.executeUpdate(functionalTestsUpdate, { args: [report({ ...nothing, studyId: 'ST-REAL' })] }),
        )
      ).message,
    ).toContain(`the run's scratch study is ${studyId}, not ST-REAL`);
    // Outcomes of workflows that are not the run's own tests do not count.
    const foreign = { ...nothing, problems: [], curated: { packageId: 'pkg-1', workflowId: 'ingest-eu-pkg-1' } };
    await handle.executeUpdate(functionalTestsUpdate, { args: [report(foreign)] });
    const status = await stage('awaiting-signature');
    const content = ReportContentSchema.parse(JSON.parse(Buffer.from(status.content!, 'base64').toString('utf8')));
    expect(content.verdict).toBe('NOT QUALIFIED');
    expect(content.causes).toContain(
      'oq.trust: a probe request for a role that may not act was given: the run was started without a probe request (steward qualify signs one)',
    );
    expect(content.causes).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^oq\.functions: a good package of the scratch study is curated into the catalog: ingest-eu-pkg-1: /,
        ),
        'oq.functions: a damaged package of the scratch study is rejected and kept in quarantine: the script reported no ingestion of a damaged package',
      ]),
    );
    // The replayed request is refused all the same.
    expect(content.checks.find((c) => c.id === 'oq.trust')!.findings).toHaveLength(1);
    await handle.terminate('test done');
  });
});
