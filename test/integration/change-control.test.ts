import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { workerEntry } from '../../lib/stack/stack';
import { INSTALL_ROOT } from '../../lib/runtime/install';
import { ChangeRecordSchema, type ChangeRecord } from '../../schemas/qualification';
import { changeDecisionUpdate, changeStatusQuery, ingestTaskQueue } from '../../contracts';
import { getJurisdiction } from '../../jurisdictions';
import { readDatasetRecord } from '../../lib/storage/catalog';
import {
  ingestSmallPackage,
  recordBaseline,
  runSteward,
  sha256,
  signedBy,
  stackState,
  stackSteward,
  tempDir,
  workerPid,
  type DemoRole,
} from '../helpers';
import { expectDenied, refusal, sealedEvents, useClients } from '../harness';

// Change control against the suite's live stack: a proposal's impact and dry run, QA's decision by another person, an
// approved change applied and re-baselined, a rejected one not applied, and a worker refusing a controlled file that
// no baseline records.

const clients = useClients();
const eu = getJurisdiction('eu');
const as = (role: DemoRole) => path.join(stackState().dataDir, 'identities', role);
const PASSPHRASE = 'second qa passphrase';
let secondQa = '';

const PIPELINE = 'pipelines/vitals-standardize/1.0.1.json';
const JURISDICTION = 'jurisdictions/eu.json';

function steward(identityDir: string, ...args: string[]) {
  return runSteward(stackState().dataDir, ['--identity', identityDir, ...args], {
    env: identityDir === secondQa ? { STEWARD_PASSPHRASE: PASSPHRASE } : {},
  });
}

function propose(identityDir: string, file: string, content: string | null, reason: string) {
  const args = ['--json', 'change', 'propose', '--jurisdiction', 'eu', '--file', file, '--reason', reason];
  return (async () => {
    if (content !== null) {
      const proposed = path.join(await tempDir('steward-change-'), path.basename(file));
      await writeFile(proposed, content);
      args.push('--proposed', proposed);
    } else args.push('--remove');
    const run = steward(identityDir, ...args);
    if (run.code !== 0 && run.code !== 1) throw new Error(`steward change propose failed (${run.code}): ${run.stderr}`);
    return { code: run.code, record: ChangeRecordSchema.parse(JSON.parse(run.stdout)) };
  })();
}

function decide(identityDir: string, decision: 'approve' | 'reject', changeId: string, notes: string) {
  return steward(identityDir, '--json', 'change', decision, changeId, '--notes', notes);
}

async function eventsOf(changeId: string) {
  const requestId = changeId.replace(/^change-eu-/, '');
  return (await sealedEvents(clients(), 'eu'))
    .map((e) => e.event)
    .filter((e) => e.targets.requestId === requestId)
    .map((e) => `${e.action}:${e.outcome}`);
}

afterAll(async () => {
  // Never leave a proposed pipeline behind in the installation, whatever failed.
  await rm(path.join(INSTALL_ROOT, PIPELINE), { force: true });
});

describe('steward change', () => {
  it('records a baseline and a second QA person for the decisions', async () => {
    recordBaseline('eu', 'before changes');
    secondQa = path.join(await tempDir('steward-qa2-'), 'identity');
    const issued = runSteward(
      stackState().dataDir,
      ['identity', 'issue', '--name', 'Second QA', '--role', 'qa', '--out', secondQa],
      { env: { STEWARD_PASSPHRASE: PASSPHRASE } },
    );
    expect(issued.code, issued.stderr).toBe(0);
  });

  it('shows which datasets a retention change moves, refuses one that breaks a rule, and applies nothing rejected', async () => {
    const record = await ingestSmallPackage(clients(), 'eu', 'ST-CHANGE', 'real-world', 11);
    const original = await readFile(path.join(INSTALL_ROOT, JURISDICTION), 'utf8');
    const rules = JSON.parse(original);
    rules.retention['real-world'].duration = 'P12Y';
    const { code, record: proposal } = await propose(
      as('steward'),
      JURISDICTION,
      `${JSON.stringify(rules, null, 2)}\n`,
      'protocol amendment: real-world data kept 12 years',
    );
    expect(code).toBe(0);
    expect(proposal.state).toBe('awaiting-approval');
    expect(proposal.impact.changedFields).toEqual(['retention.real-world.duration']);
    expect(proposal.impact.dryRun.every((c) => c.ok)).toBe(true);
    expect(proposal.impact.restartNeeded).toBe(true);
    const moved = proposal.impact.retention.find((m) => m.datasetId === record.datasetId)!;
    expect(moved).toMatchObject({ rule: 'real-world', from: record.retention.until });
    expect(moved.days === 730 || moved.days === 731).toBe(true);
    // Only real-world datasets move.
    expect(proposal.impact.retention.every((m) => m.rule === 'real-world')).toBe(true);
    expect(proposal.impact.retest).toEqual(expect.arrayContaining(['IQ-04', 'IQ-05', 'IQ-06']));
    const shown = stackSteward('change', 'show', proposal.changeId);
    expect(shown.stdout).toContain(`${record.datasetId} (real-world): ${record.retention.until}`);

    const rejected = decide(as('qa'), 'reject', proposal.changeId, 'the amendment is not signed yet');
    expect(rejected.code, rejected.stderr).toBe(0);
    expect(JSON.parse(rejected.stdout).state).toBe('rejected');
    // Nothing was applied.
    expect(await readFile(path.join(INSTALL_ROOT, JURISDICTION), 'utf8')).toBe(original);
    expect(await eventsOf(proposal.changeId)).toEqual(
      expect.arrayContaining(['change.proposed:success', 'change.rejected:success']),
    );
    expect(await eventsOf(proposal.changeId)).not.toContain('change.applied:success');
    // A decided change takes no second decision.
    const again = decide(as('qa'), 'approve', proposal.changeId, 'approving after all');
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('it was decided already');

    // A change that shortens a legal minimum and renames a bucket is refused by its dry run, before any decision.
    rules.retention['clinical-trial'].duration = 'P5Y';
    rules.buckets.curated = 'steward-eu-curated-2';
    const refused = await propose(as('steward'), JURISDICTION, JSON.stringify(rules), 'shorter trial retention');
    expect(refused.code).toBe(1);
    expect(refused.record.state).toBe('refused');
    expect(refused.record.problems.join('\n')).toContain(
      'legal minimums not shortened: retention: shortens a legal minimum: clinical-trial (P25Y → P5Y)',
    );
    expect(refused.record.problems.join('\n')).toContain('buckets unchanged');
    expect(await eventsOf(refused.record.changeId)).toContain('change.refused:failure');
  });

  it('applies a change approved by another QA person and records a new baseline; the proposer may not approve it', async () => {
    const base = JSON.parse(await readFile(path.join(INSTALL_ROOT, 'pipelines/vitals-standardize/1.0.0.json'), 'utf8'));
    const content = `${JSON.stringify({ ...base, version: '1.0.1' }, null, 2)}\n`;
    const { record: proposal } = await propose(as('qa'), PIPELINE, content, 'vitals-standardize 1.0.1: same steps');
    expect(proposal.state).toBe('awaiting-approval');
    expect(proposal.impact).toMatchObject({
      kind: 'pipeline',
      before: null,
      after: sha256(content),
      restartNeeded: false,
    });
    expect(proposal.impact.pipelines).toEqual([{ pipeline: 'vitals-standardize@1.0.1', outputs: [] }]);

    // The proposer approving their own change is refused, audited, and leaves it as it was.
    const own = decide(as('qa'), 'approve', proposal.changeId, 'looks right to me');
    expect(own.code).toBe(6);
    expect(own.stderr).toContain('a change is approved or rejected by another person');
    expect(existsSync(path.join(INSTALL_ROOT, PIPELINE))).toBe(false);
    const still = stackSteward('--json', 'change', 'show', proposal.changeId);
    expect(JSON.parse(still.stdout).state).toBe('awaiting-approval');

    const approved = decide(secondQa, 'approve', proposal.changeId, 'impact reviewed: new version, no outputs');
    expect(approved.code, approved.stderr).toBe(0);
    const done = ChangeRecordSchema.parse(JSON.parse(approved.stdout)) as ChangeRecord;
    expect(done.state).toBe('applied');
    expect(done.decision?.eSignature.printedName).toBe('Second QA');
    expect(sha256(await readFile(path.join(INSTALL_ROOT, PIPELINE)))).toBe(sha256(content));
    const baseline = JSON.parse(stackSteward('--json', 'baseline', 'show', '--jurisdiction', 'eu').stdout);
    expect(baseline.baseline.version).toBe(done.baseline);
    expect(baseline.approval.eSignature.printedName).toBe('Second QA');
    expect(baseline.baseline.items).toContainEqual(
      expect.objectContaining({ id: `file.${PIPELINE}`, value: sha256(content) }),
    );
    expect(await eventsOf(proposal.changeId)).toEqual(
      expect.arrayContaining([
        'change.proposed:success',
        'request.denied:denied',
        'change.approved:success',
        'change.applied:success',
        'baseline.approved:success',
      ]),
    );
    const drift = stackSteward('--identity', as('qa'), 'drift', 'check', '--jurisdiction', 'eu');
    expect(drift.stdout).not.toContain(PIPELINE);
  });

  it('refuses decisions sent to Temporal directly: a wrong role, a replayed approval, a start by an auditor', async () => {
    const base = JSON.parse(await readFile(path.join(INSTALL_ROOT, 'pipelines/labs-encode/1.0.0.json'), 'utf8'));
    const content = `${JSON.stringify({ ...base, version: '9.9.9' }, null, 2)}\n`;
    const file = 'pipelines/labs-encode/9.9.9.json';
    const first = (await propose(as('steward'), file, content, 'first proposal')).record;
    const second = (await propose(as('steward'), file, content, 'second proposal')).record;
    const client = clients().client;
    const update = (changeId: string, request: ReturnType<typeof signedBy>['request']) =>
      client.workflow.getHandle(changeId).executeUpdate(changeDecisionUpdate, { args: [{ request }] });
    const params = { decision: 'approve' as const, sha256: sha256(content), notes: 'approved directly' };

    const byOps = signedBy('ops', { action: 'change.decide', jurisdiction: 'eu', params });
    const wrongRole = await refusal(update(first.changeId, byOps.request));
    expect(wrongRole.type).toBe('AccessDenied');
    expect(wrongRole.message).toContain('change.decide');

    const rejection = signedBy('qa', {
      action: 'change.decide',
      jurisdiction: 'eu',
      params: { decision: 'reject', sha256: sha256(content), notes: 'not needed' },
    });
    expect((await update(first.changeId, rejection.request)).state).toBe('rejected');
    const replayed = await refusal(update(second.changeId, rejection.request));
    expect(replayed.type).toBe('AccessDenied');
    expect((await client.workflow.getHandle(second.changeId).query(changeStatusQuery)).state).toBe('awaiting-approval');
    const rejectSecond = decide(as('qa'), 'reject', second.changeId, 'not needed either');
    expect(rejectSecond.code, rejectSecond.stderr).toBe(0);
    expect(existsSync(path.join(INSTALL_ROOT, file))).toBe(false);

    const byAuditor = signedBy('auditor', {
      action: 'change.propose',
      jurisdiction: 'eu',
      params: {
        file,
        content: Buffer.from(content).toString('base64'),
        sha256: sha256(content),
        reason: 'sneaking in',
      },
    });
    const started = await client.workflow.start('changeWorkflow', {
      args: [byAuditor],
      taskQueue: ingestTaskQueue('eu'),
      workflowId: `change-eu-direct-${Date.now()}`,
    });
    expect(await expectDenied(started.result())).toContain('change.propose');
    expect(existsSync(path.join(INSTALL_ROOT, file))).toBe(false);
  });

  it('applies approved jurisdiction rules once the workers restart: retention moves, a new baseline is recorded', async () => {
    const record = await ingestSmallPackage(clients(), 'eu', 'ST-CHANGE', 'real-world', 21);
    const file = path.join(INSTALL_ROOT, JURISDICTION);
    const original = await readFile(file, 'utf8');
    const rules = JSON.parse(original);
    rules.retention['real-world'].duration = 'P12Y';
    const changed = `${JSON.stringify(rules, null, 2)}\n`;

    /** Proposed by the steward, approved by QA, applied once the eu worker restarted, then re-baselined. */
    const applyRules = async (content: string, reason: string) => {
      const { record: proposal } = await propose(as('steward'), JURISDICTION, content, reason);
      expect(proposal.state).toBe('awaiting-approval');
      const approved = decide(as('qa'), 'approve', proposal.changeId, 'impact reviewed');
      expect(approved.code, approved.stderr).toBe(0);
      expect(JSON.parse(approved.stdout).state).toBe('awaiting-restart');
      expect(sha256(await readFile(file))).toBe(sha256(content));
      const victim = await workerPid('eu');
      process.kill(victim!, 'SIGKILL');
      const signed = steward(as('qa'), '--json', 'change', 'sign', proposal.changeId);
      expect(signed.code, signed.stderr).toBe(0);
      expect(await workerPid('eu')).not.toBe(victim);
      return ChangeRecordSchema.parse(JSON.parse(signed.stdout));
    };

    try {
      const done = await applyRules(changed, 'protocol amendment: real-world data kept 12 years');
      expect(done.state).toBe('applied');
      const moved = (await readDatasetRecord(clients().s3, eu.buckets.catalog, record.datasetId))!;
      expect(moved.retention.duration).toBe('P12Y');
      expect(moved.retention.until).toBe(done.impact.retention.find((m) => m.datasetId === record.datasetId)!.to);
      const events = await eventsOf(done.changeId);
      expect(events).toEqual(expect.arrayContaining(['change.applied:success', 'retention.changed:success']));
      const baseline = JSON.parse(stackSteward('--json', 'baseline', 'show', '--jurisdiction', 'eu').stdout);
      expect(baseline.baseline.version).toBe(done.baseline);
      expect(baseline.baseline.items).toContainEqual(
        expect.objectContaining({ id: `file.${JURISDICTION}`, value: sha256(changed) }),
      );
    } finally {
      // Back as the suite found it, through change control again.
      if ((await readFile(file, 'utf8')) !== original) {
        const back = await applyRules(original, 'back to the shipped rules');
        expect(back.state).toBe('applied');
      }
    }
    const restored = (await readDatasetRecord(clients().s3, eu.buckets.catalog, record.datasetId))!;
    expect(restored.retention.until).toBe(record.retention.until);
  });

  it('a worker refuses to start on a controlled file the baseline does not record', async () => {
    const file = path.join(INSTALL_ROOT, PIPELINE);
    const approved = await readFile(file, 'utf8');
    await writeFile(file, approved.replace('"1.0.1"', '"1.0.1" '));
    try {
      const state = stackState();
      const { command, args } = workerEntry();
      const child = spawn(command, args, {
        env: {
          ...process.env,
          STEWARD_DATA_DIR: state.dataDir,
          STEWARD_JURISDICTION: 'eu',
          STEWARD_SCRATCH_DIR: await tempDir('steward-refused-worker-'),
          STEWARD_TEMPORAL_ADDRESS: state.temporal.address,
          STEWARD_TEMPORAL_NAMESPACE: 'default',
          STEWARD_S3_ENDPOINT: state.s3.endpoint,
          STEWARD_S3_REGION: 'us-east-1',
          STEWARD_S3_ACCESS_KEY_ID: state.s3.accessKeyId,
          STEWARD_S3_SECRET_ACCESS_KEY: state.s3.secretAccessKey,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      const exit = await new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve(null);
        }, 90_000);
        child.on('exit', (code) => {
          clearTimeout(timer);
          resolve(code);
        });
      });
      expect(exit, output).toBe(1);
      expect(output).toContain('does not load controlled files the approved baseline');
      expect(output).toContain(`${PIPELINE} has SHA-256`);
    } finally {
      await writeFile(file, approved);
    }

    // Removing it again goes through change control too, leaving the installation as the suite found it.
    const { record: removal } = await propose(secondQa, PIPELINE, null, 'vitals-standardize 1.0.1 not needed');
    expect(removal.impact.after).toBeNull();
    const removed = decide(as('qa'), 'approve', removal.changeId, 'removal reviewed');
    expect(removed.code, removed.stderr).toBe(0);
    expect(JSON.parse(removed.stdout).state).toBe('applied');
    expect(existsSync(file)).toBe(false);
  });
});
