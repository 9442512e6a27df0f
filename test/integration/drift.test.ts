import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { DeleteBucketPolicyCommand, GetBucketPolicyCommand, PutBucketPolicyCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import {
  deviationDecisionUpdate,
  deviationWorkflowId,
  driftScheduleId,
  ErrorType,
  ingestTaskQueue,
  preprocessJobWorkflowId,
} from '../../contracts';
import { getJurisdiction } from '../../jurisdictions';
import { loadPipeline } from '../../lib/preprocess/load-pipeline';
import { createS3Client } from '../../lib/storage/s3';
import type { DeviationRecord, DriftResult } from '../../schemas/qualification';
import { recordBaseline, signedBy, stackState, stackSteward, tempDir, type DemoRole } from '../helpers';
import { destroyRetiredKey, failureOf, refusal, rootApplicationFailure, sealedEvents, useClients } from '../harness';

// Drift detection against the live stack: a baseline of us approved by QA, a removed bucket policy found by a drift
// check and opened as deviations, preprocessing refused while they are open, QA's investigation and closure, and the
// ways a caller talking to Temporal directly might open, decide or fake them.

const clients = useClients();
const us = getJurisdiction('us');
const as = (role: DemoRole) => path.join(stackState().dataDir, 'identities', role);

function driftCheck(role: DemoRole = 'qa') {
  const run = stackSteward('--identity', as(role), '--json', 'drift', 'check', '--jurisdiction', 'us');
  if (run.code !== 0 && run.code !== 1) throw new Error(`steward drift check failed (${run.code}): ${run.stderr}`);
  return { code: run.code, result: JSON.parse(run.stdout) as DriftResult };
}

function openDeviations(): DeviationRecord[] {
  const run = stackSteward('--json', 'deviations', 'list', '--jurisdiction', 'us');
  expect(run.code, run.stderr).toBe(0);
  return JSON.parse(run.stdout) as DeviationRecord[];
}

/** A preprocessing job in us of a dataset that does not exist: how far it gets says which guard stopped it. */
async function preprocessFailure() {
  const requestId = `drift-pre-${randomUUID()}`;
  const pipeline = await loadPipeline('vitals-standardize@1.0.0', {});
  const handle = await clients().client.workflow.start('preprocessJobWorkflow', {
    taskQueue: ingestTaskQueue('us'),
    workflowId: preprocessJobWorkflowId('us', requestId),
    args: [
      signedBy('steward', {
        action: 'preprocess.run',
        jurisdiction: 'us',
        requestId,
        params: { datasetIds: ['ds-us-000000000000000000000000'], pipeline, parameters: {}, seed: 1, gpu: false },
      }),
    ],
  });
  return rootApplicationFailure(await failureOf(handle.result()));
}

describe('drift detection and deviations', () => {
  it('opens a deviation for a removed bucket policy, refuses preprocessing while it is open, and QA closes it', async () => {
    recordBaseline('us', 'suite installation');
    const clean = driftCheck();
    expect(clean.code).toBe(0);
    expect(clean.result.findings).toEqual([]);
    expect(clean.result.baseline).toBeGreaterThanOrEqual(1);

    const s3 = createS3Client(stackState().s3);
    const bucket = us.buckets.landing;
    const policy = (await s3.send(new GetBucketPolicyCommand({ Bucket: bucket }))).Policy!;
    await s3.send(new DeleteBucketPolicyCommand({ Bucket: bucket }));
    let found: DriftResult;
    try {
      const drifted = driftCheck('ops');
      expect(drifted.code).toBe(1);
      found = drifted.result;
      expect(found.findings.map((f) => `${f.check}: ${f.text}`)).toContain(
        `iq.policies: bucket ${bucket} has a bucket policy: none found`,
      );
      expect(found.findings.every((f) => f.risk === 'high' && f.requirements.includes('IQ-06'))).toBe(true);
      expect(found.opened).toHaveLength(found.findings.length);
      // The same drift found again is the deviation already open, not a second one.
      const again = driftCheck();
      expect(again.result.opened).toEqual([]);
      expect([...again.result.alreadyOpen].sort()).toEqual([...found.opened].sort());
    } finally {
      await s3.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: policy }));
    }
    const open = openDeviations();
    expect(open.map((d) => d.deviationId).sort()).toEqual([...found.opened].sort());
    expect(open.every((d) => d.state === 'open' && d.baseline === clean.result.baseline)).toBe(true);

    // Preprocessing in us waits for QA, naming the deviation.
    const refused = await preprocessFailure();
    expect(refused.type).toBe(ErrorType.DeviationOpen);
    expect(refused.message).toContain(found.opened[0]!);

    // Decisions: only QA, in order, each e-signed.
    const id = found.opened[0]!;
    const handle = clients().client.workflow.getHandle(id);
    const decision = (role: DemoRole, params: unknown) =>
      handle.executeUpdate(deviationDecisionUpdate, {
        args: [{ request: signedBy(role, { action: 'deviation.decide', jurisdiction: 'us', params }).request }],
      });
    expect((await refusal(decision('ops', { step: 'investigate', notes: 'looked at it' }))).message).toMatch(
      /may not deviation.decide/,
    );
    const early = await refusal(decision('qa', { step: 'close', disposition: 'corrected', notes: 'put back' }));
    expect(early).toMatchObject({
      type: ErrorType.RequestConflict,
      message: expect.stringMatching(/once investigated/),
    });

    for (const deviation of found.opened) {
      const investigated = stackSteward(
        '--identity',
        as('qa'),
        'deviations',
        'investigate',
        deviation,
        '--notes',
        'the landing bucket policy was deleted by hand on the storage server',
      );
      expect(investigated.code, investigated.stderr).toBe(0);
      expect(investigated.stdout).toContain('INVESTIGATED');
      const closed = stackSteward(
        '--identity',
        as('qa'),
        'deviations',
        'close',
        deviation,
        '--disposition',
        'corrected',
        '--notes',
        'policy restored from the baseline; drift check clean',
      );
      expect(closed.code, closed.stderr).toBe(0);
      expect(closed.stdout).toContain('closed corrected by Demo QA (qa)');
    }
    expect(openDeviations()).toEqual([]);
    const shown = stackSteward('deviations', 'show', id);
    expect(shown.stdout).toContain('investigated by Demo QA (qa)');
    // Closed, it no longer holds preprocessing: the job goes on to find that its dataset does not exist.
    expect((await preprocessFailure()).type).toBe(ErrorType.DatasetNotFound);
    expect(driftCheck().result.findings).toEqual([]);

    const events = await sealedEvents(clients(), 'us');
    const actions = (a: string) => events.filter((e) => e.event.action === a && e.event.targets.requestId === id);
    expect(actions('deviation.opened')).toHaveLength(1);
    expect(actions('deviation.investigated')).toHaveLength(1);
    expect(actions('deviation.closed')).toHaveLength(1);
    expect(actions('deviation.closed')[0]!.event.principal?.role).toBe('qa');
    expect(events.filter((e) => e.event.action === 'drift.checked').length).toBeGreaterThanOrEqual(4);
    // The refused job is in the trail, naming the deviation.
    const refusedJob = events.find((e) => e.event.action === 'preprocess.refused' && e.event.reason?.includes(id));
    expect(refusedJob?.event).toMatchObject({ outcome: 'denied', principal: { role: 'steward' } });
  });

  it('runs from its schedule, and refuses a forged deviation or a scheduled-looking check started directly', async () => {
    const { client } = clients();
    // The schedule's own run is accepted.
    const before = new Date();
    // (The suite pauses drift schedules; unpaused, the schedule starts a check now, and is paused again once it has
    // taken that action: a pause that reached the scheduler before the trigger would leave the trigger untaken.)
    const schedule = client.schedule.getHandle(driftScheduleId('us'));
    await schedule.unpause();
    // The run the schedule says it took for the trigger, awaited for as long as it runs (a loaded 2-core CI machine
    // has taken more than 90 s), and completed.
    let taken: string | undefined;
    try {
      await schedule.trigger();
      for (let i = 0; i < 120 && !taken; i++) {
        const { info } = await schedule.describe();
        taken = [...info.runningActions, ...info.recentActions.filter((a) => a.takenAt >= before).map((a) => a.action)]
          .map((a) => a.workflow.workflowId)
          .find((id) => id.startsWith(`${driftScheduleId('us')}-`));
        if (!taken) await new Promise((r) => setTimeout(r, 500));
      }
    } finally {
      await schedule.pause('paused for the test suite');
    }
    expect(taken, 'the schedule started a drift check').toBeDefined();
    await client.workflow.getHandle(taken!).result();
    expect((await client.workflow.getHandle(taken!).describe()).status.name).toBe('COMPLETED');

    // Started directly, a "scheduled" check is refused; so is a deviation without a drift check's sealed opening.
    const fake = await client.workflow.start('driftCheckWorkflow', {
      taskQueue: ingestTaskQueue('us'),
      workflowId: `${driftScheduleId('us')}-forged-${randomUUID()}`,
      args: [{ scheduled: { jurisdiction: 'us' } }],
    });
    const denied = rootApplicationFailure(await failureOf(fake.result()));
    expect(denied.type).toBe(ErrorType.AccessDenied);
    expect(denied.message).toContain(`not started by the schedule ${driftScheduleId('us')}`);
    const forged = await client.workflow.start('deviationWorkflow', {
      taskQueue: ingestTaskQueue('us'),
      workflowId: deviationWorkflowId('us', 'feedfacefeedface'),
      args: [
        {
          format: 'steward-message/1',
          kind: 'deviation.open',
          jurisdiction: 'us',
          from: { workflowId: 'x', runId: 'y' },
          to: deviationWorkflowId('us', 'feedfacefeedface'),
          id: 'forged',
          issuedAt: new Date().toISOString(),
          body: {
            finding: { check: 'iq.tools', requirements: ['IQ-01'], risk: 'high', text: 'x' },
            detectedBy: 'x',
            baseline: 1,
          },
          mac: 'A'.repeat(43),
        },
      ],
    });
    expect(rootApplicationFailure(await failureOf(forged.result())).type).toBe(ErrorType.MessageRefused);
    expect(openDeviations()).toEqual([]);
  }, 600_000);

  it('names the baseline in force in run documentation and deletion certificates', async () => {
    const shown = stackSteward('--json', 'baseline', 'show', '--jurisdiction', 'us');
    expect(shown.code, shown.stderr).toBe(0);
    const inForce = JSON.parse(shown.stdout) as { baseline: { version: number }; sha256: string };
    const named = `configuration baseline: version ${inForce.baseline.version} (${inForce.sha256})`;

    // A preprocessing job's run documentation.
    const out = await tempDir('steward-drift-demo-');
    const study = `US-DRIFT-${randomUUID().slice(0, 6).toUpperCase()}`;
    const where = ['--jurisdiction', 'us', '--study', study];
    expect(stackSteward('demo', 'generate', '--out', out, ...where, '--rows', '200', '--subjects', '20').code).toBe(0);
    expect(stackSteward('consent', 'import', path.join(out, 'consent.csv'), ...where).code).toBe(0);
    const ingest = stackSteward('--json', 'ingest', path.join(out, 'package'));
    expect(ingest.code, ingest.stderr).toBe(0);
    const datasetId = (JSON.parse(ingest.stdout) as { record: { datasetId: string } }).record.datasetId;
    const params = path.join(out, 'params.json');
    await writeFile(params, JSON.stringify({ missing_value: 0 }));
    const requestId = `drift-run-${randomUUID()}`;
    const run = stackSteward(
      ...['preprocess', 'run', '--jurisdiction', 'us', '--dataset', datasetId, '--pipeline', 'labs-encode@1.0.0'],
      ...['--params', params, '--seed', '1', '--request-id', requestId],
    );
    expect(run.code, run.stderr).toBe(0);
    const documentation = stackSteward('preprocess', 'show', preprocessJobWorkflowId('us', requestId));
    expect(documentation.stdout).toContain(named);

    // A deletion certificate: a retired study key destroyed on the DPO's request.
    const destroyed = await destroyRetiredKey(clients(), 'us', study);
    const verified = stackSteward('cert', 'verify', destroyed.certificateId);
    expect(verified.code, verified.stdout).toBe(0);
    expect(verified.stdout).toContain(named);
  });
});
