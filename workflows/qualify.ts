import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  executeChild,
  proxyActivities,
  setHandler,
  TemporalFailure,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { createQualificationActivities, DraftDocument } from '../activities/qualification';
import type { createStorageInspectorActivities } from '../activities/storage-inspector';
import {
  ErrorType,
  ingestTaskQueue,
  inspectTaskQueue,
  nonRetryable,
  functionalTestsUpdate,
  qaSignUpdate,
  qualificationStatusQuery,
  scratchStudyId,
} from '../contracts';
import type { ErasureUnitInput } from '../schemas/erasure';
import {
  BaselineParamsSchema,
  FunctionalReportSchema,
  type FunctionalReport,
  QaSignInputSchema,
  QaSignParamsSchema,
  QualifyParamsSchema,
  type Inventory,
  type QualificationPhase,
  type QualificationStatus,
  type QualifyParams,
} from '../schemas/qualification';
import type { SignedWorkflowInput } from '../schemas/request';
import { recordAudit } from './audit';
import { eraseUnits } from './eraseUnits';
import { authorize, authorizeDecision, type Authorized } from './authorize';
import { setPhase } from './progress';

const qualification = proxyActivities<ReturnType<typeof createQualificationActivities>>({
  startToCloseTimeout: '5 minutes',
  // Reads settings and hashes files; writes write-once evidence under fixed keys: retried through short outages.
  retry: { maximumAttempts: 10, initialInterval: '2s', maximumInterval: '30s' },
});

/** Bucket settings, read by the jurisdiction's storage inspector (storage shows them to its administrator only). */
function inspector(jurisdiction: string) {
  return proxyActivities<ReturnType<typeof createStorageInspectorActivities>>({
    taskQueue: inspectTaskQueue(jurisdiction),
    startToCloseTimeout: '2 minutes',
    // An inspector that is down is reported by the CLI from the pending activity; the run waits for it a while.
    scheduleToStartTimeout: '10 minutes',
    retry: { maximumAttempts: 10, initialInterval: '2s', maximumInterval: '30s' },
  });
}

/** The installation inventory: the worker's part and the storage inspector's, taken side by side. */
export async function takeInventory(jurisdiction: string): Promise<Inventory> {
  const [inventory, storage] = await Promise.all([
    qualification.takeInventoryActivity(),
    inspector(jurisdiction).inspectStorageActivity(),
  ]);
  return { ...inventory, items: [...inventory.items, ...storage.items], rules: [...inventory.rules, ...storage.rules] };
}

/** How long a document waits for QA's signature before the run ends unsigned. */
const SIGNATURE_WAIT = '24 hours';

export interface QualificationResult {
  jurisdiction: string;
  document: string;
  sha256: string;
  verdict: QualificationStatus['verdict'];
  version: number | null;
  signed: boolean;
  keys: string[];
}

/**
 * Holds a document for QA's signature: shows it through the status query, takes QA's signed approval (an e-signed
 * update carrying their CMS signature over the document's bytes), has it checked and the document stored write-once,
 * and audits the outcome. Ends unsigned, audited, when no signature comes in time.
 */
export async function awaitQaSignature(
  auth: Authorized<unknown>,
  draft: DraftDocument,
  targets: { requestId: string },
): Promise<QualificationResult> {
  const status: QualificationStatus = {
    stage: 'awaiting-signature',
    document: draft.document,
    sha256: draft.sha256,
    content: draft.content,
    verdict: draft.verdict,
    keys: [],
  };
  setHandler(qualificationStatusQuery, () => status);
  let signing = false;
  setHandler(
    qaSignUpdate,
    async (input) => {
      if (status.stage !== 'awaiting-signature' || signing) {
        throw nonRetryable(ErrorType.InvalidInput, `${draft.document} is ${status.stage}: nothing to sign`);
      }
      signing = true;
      try {
        const { request } = QaSignInputSchema.parse(input);
        const d = await authorizeDecision(request, 'qualify.sign', QaSignParamsSchema, targets);
        if (d.params.sha256 !== draft.sha256 || d.params.document !== draft.document) {
          throw nonRetryable(
            ErrorType.InvalidInput,
            `the signature is for ${d.params.document} (SHA-256 ${d.params.sha256}), not ${draft.document} (${draft.sha256})`,
          );
        }
        try {
          const stored = await qualification.storeQaSignedActivity({
            draft,
            p7s: d.params.p7s,
            approval: { eSignature: d.eSignature, request },
          });
          status.keys = stored.keys;
        } catch (error) {
          await recordAudit(auth.jurisdiction, d.principal, [
            {
              action: 'qa-signature.refused',
              outcome: 'denied',
              targets,
              details: { document: draft.document, reason: (error as Error).message.slice(0, 500) },
            },
          ]);
          throw error;
        }
        status.stage = 'signed';
        status.content = null;
        await recordAudit(auth.jurisdiction, d.principal, [
          draft.version === null
            ? {
                action: 'qualification.completed',
                outcome: 'success',
                targets,
                reason: d.eSignature.meaning,
                details: { reportId: draft.document, verdict: draft.verdict, sha256: draft.sha256 },
              }
            : {
                action: 'baseline.approved',
                outcome: 'success',
                targets,
                reason: d.eSignature.meaning,
                details: { version: draft.version, sha256: draft.sha256 },
              },
        ]);
        return status;
      } catch (error) {
        if (error instanceof TemporalFailure) throw error;
        throw nonRetryable(ErrorType.InvalidInput, error instanceof Error ? error.message : String(error));
      } finally {
        signing = false;
      }
    },
    {
      validator: (input) => {
        if (!QaSignInputSchema.safeParse(input).success) throw new Error('not a signed QA approval');
      },
    },
  );
  setPhase(`awaiting QA's signature of ${draft.document}`);
  const signed = await condition(() => status.stage === 'signed', SIGNATURE_WAIT);
  if (!signed) {
    status.stage = 'unsigned';
    status.content = null;
    await recordAudit(auth.jurisdiction, auth.principal, [
      {
        action: 'qualification.unsigned',
        outcome: 'failure',
        targets,
        details: { document: draft.document, sha256: draft.sha256, waited: SIGNATURE_WAIT },
      },
    ]);
  }
  // The signing update audits after the document is stored: it answers before the run ends.
  await condition(allHandlersFinished);
  return {
    jurisdiction: auth.jurisdiction,
    document: draft.document,
    sha256: draft.sha256,
    verdict: draft.verdict,
    version: draft.version,
    signed,
    keys: status.keys,
  };
}

/** Answers the status query before there is a document: the run is still taking and judging the inventory. */
export function showRunning(): QualificationStatus {
  const status: QualificationStatus = {
    stage: 'running',
    document: null,
    sha256: null,
    content: null,
    verdict: null,
    keys: [],
  };
  setHandler(qualificationStatusQuery, () => status);
  return status;
}

const PHASES: Record<QualifyParams['phase'], QualificationPhase[]> = {
  iq: ['IQ'],
  oq: ['OQ'],
  pq: ['PQ'],
  all: ['IQ', 'OQ', 'PQ'],
};

/** The operational and performance checks run longer than an inventory: replaying histories, running pipelines. */
const probes = proxyActivities<ReturnType<typeof createQualificationActivities>>({
  startToCloseTimeout: '15 minutes',
  retry: { maximumAttempts: 3, initialInterval: '5s' },
});

/** How a child run that should have been refused ended: refused (with the failure's message) or not. */
async function refusedChild(
  workflowType: string,
  workflowId: string,
  input: SignedWorkflowInput,
  jurisdiction: string,
): Promise<{ refused: boolean; detail: string }> {
  try {
    await executeChild(workflowType, {
      workflowId,
      args: [input],
      taskQueue: ingestTaskQueue(jurisdiction),
      // A refusal comes at the first step; a run that was let in is not waited for.
      workflowExecutionTimeout: '2 minutes',
    });
    return { refused: false, detail: `${workflowId} was accepted and ran` };
  } catch (error) {
    let root: unknown = error;
    while (root instanceof Error && root.cause && !(root instanceof ApplicationFailure)) root = root.cause;
    const failure = root instanceof ApplicationFailure ? root : undefined;
    return {
      refused: failure?.type === ErrorType.AccessDenied,
      detail: `${workflowId}: ${failure?.type ?? 'failed'}: ${(failure?.message ?? String(error)).slice(0, 300)}`,
    };
  }
}

/**
 * The trust boundary, tried as a caller who skips the CLI would (OQ): the QA person's probe request (a retention
 * preview, which their role may not ask for) sent as is and with its body altered, and this run's own request replayed
 * into a second qualification. Each must be refused with AccessDenied, and is audited by the workflow that refuses it.
 */
async function trustProbes(raw: SignedWorkflowInput, auth: Authorized<QualifyParams>): Promise<Inventory['rules']> {
  const { workflowId } = workflowInfo();
  const { jurisdiction } = auth;
  const rules: Inventory['rules'] = [];
  const rule = (name: string, outcome: { refused: boolean; detail: string }) =>
    rules.push({ check: 'oq.trust', rule: name, ok: outcome.refused, detail: outcome.detail });
  const probe = auth.params.probe;
  if (!probe) {
    rules.push({
      check: 'oq.trust',
      rule: 'a probe request for a role that may not act was given',
      ok: false,
      detail: 'the run was started without a probe request (steward qualify signs one)',
    });
  } else {
    const wrongRole = await refusedChild(
      'retentionSweepWorkflow',
      `${workflowId}-oq-wrong-role`,
      { request: probe },
      jurisdiction,
    );
    rule('a request signed by a role the action does not allow is refused', {
      ...wrongRole,
      refused: wrongRole.refused && wrongRole.detail.includes('may not retention.preview'),
    });
    const altered = { ...probe, body: probe.body.replace('"dryRun":true', '"dryRun":false') };
    const forged = await refusedChild(
      'retentionSweepWorkflow',
      `${workflowId}-oq-altered`,
      { request: altered },
      jurisdiction,
    );
    rule('a signed request whose body was altered is refused', {
      ...forged,
      refused: forged.refused && altered.body !== probe.body,
    });
  }
  rule(
    "a signed request replayed into another workflow is refused (this run's own request)",
    await refusedChild('qualifyWorkflow', `${workflowId}-oq-replayed`, raw, jurisdiction),
  );
  return rules;
}

/**
 * The deletion path, on the run's own scratch data (synthetic rows, no personal data, in the landing bucket): deleted
 * through the erasure operation every deletion uses, which verifies the objects are gone and issues a signed
 * certificate; the certificate is then checked with the others (OQ-04).
 */
async function scratchDeletion(
  auth: Authorized<QualifyParams>,
  reportId: string,
): Promise<{ rules: Inventory['rules']; certificates: string[] }> {
  const scratch = await probes.writeScratchDataActivity({ reportId });
  const result = await eraseUnits('oq-scratch', {
    jurisdiction: auth.jurisdiction,
    label: `operational qualification ${reportId}: scratch data`,
    bundled: false,
    principal: auth.principal,
    requestedBy: auth.eSignature,
    approvedBy: [auth.eSignature],
    requestId: auth.requestId,
    details: { reportId },
    units: [
      {
        unitId: `${reportId}/scratch`,
        event: 'package.deleted',
        targets: { packageId: `${reportId}-scratch` },
        reason: {
          kind: 'retention',
          legalBasis: 'operational qualification: scratch data is kept only for the run that wrote it',
          detail: `the scratch data of qualification ${reportId} (synthetic, no personal data), removed when the run ends`,
        },
        note: 'scratch data of an operational qualification',
        objects: {
          targets: [{ bucket: scratch.bucket, prefixes: [scratch.prefix], bypassGovernance: false }],
          absent: scratch.keys.map((key) => ({ bucket: scratch.bucket, key })),
        },
      },
    ],
  });
  const erased = result.erased[0];
  return {
    rules: [
      {
        check: 'oq.certificate',
        rule: `the run's scratch data (${scratch.keys.length} objects) is deleted, every version, with a signed certificate`,
        ok: !!erased && erased.verified && erased.versions >= scratch.keys.length,
        detail: erased
          ? `${erased.versions} versions, ${erased.bytes} bytes; certificate ${erased.certificateId}; absence verified: ${erased.verified}`
          : `not deleted: ${result.failed.map((f) => f.reason).join('; ')}`,
      },
    ],
    certificates: erased ? [erased.certificateId] : [],
  };
}

/** How long the run waits for the testers' script to report. */
const TESTS_WAIT = '30 minutes';

/**
 * The functions, run by the testers in the run's scratch study (OQ): the run waits for QA's signed report of what the
 * script did, checks each outcome from Temporal and storage itself (a good package curated, a damaged one rejected
 * and quarantined, a subject's erasure completed with a certificate), then deletes the scratch study's datasets and
 * raw uploads through the erasure path, with a certificate each.
 */
async function functionalTests(
  auth: Authorized<QualifyParams>,
  status: QualificationStatus,
  startedAt: string,
): Promise<{ rules: Inventory['rules']; certificates: string[] }> {
  const studyId = scratchStudyId(auth.requestId);
  const targets = { requestId: auth.requestId, studyId };
  let report: FunctionalReport | null = null;
  setHandler(
    functionalTestsUpdate,
    async (input) => {
      if (status.stage !== 'awaiting-tests' || report) {
        throw nonRetryable(ErrorType.RequestConflict, `the run is ${status.stage}: it takes one report of the tests`);
      }
      const { request } = QaSignInputSchema.parse(input);
      const d = await authorizeDecision(request, 'qualify.run', FunctionalReportSchema, targets);
      if (d.params.studyId !== studyId) {
        throw nonRetryable(ErrorType.InvalidInput, `the run's scratch study is ${studyId}, not ${d.params.studyId}`);
      }
      report = d.params;
      status.stage = 'running';
      status.document = null;
      return status;
    },
    {
      validator: (input) => {
        if (!QaSignInputSchema.safeParse(input).success) throw new Error('not a signed report of the tests');
      },
    },
  );
  status.stage = 'awaiting-tests';
  status.document = studyId;
  setPhase(`operational qualification: waiting for the testers' script in scratch study ${studyId}`);
  const reported = await condition(() => report !== null, TESTS_WAIT);
  await condition(allHandlersFinished);
  status.stage = 'running';
  status.document = null;
  if (!reported) {
    return {
      rules: [
        {
          check: 'oq.functions',
          rule: 'the testers’ script reported what it did in the scratch study',
          ok: false,
          detail: `no report within ${TESTS_WAIT} (steward qualify runs the script with the testers' identities)`,
        },
      ],
      certificates: [],
    };
  }
  setPhase('operational qualification: checking what the testers did');
  const verified = await probes.verifyFunctionalActivity({ studyId, since: startedAt, report: report! });
  const units: ErasureUnitInput[] = [
    ...verified.datasets.map((d): ErasureUnitInput => ({
      unitId: d.datasetId,
      event: 'dataset.deleted',
      targets: d,
      reason: {
        kind: 'retention',
        legalBasis: 'operational qualification: the scratch study is kept only for the run that made it',
        detail: `dataset ${d.datasetId} of scratch study ${studyId} (synthetic data), removed when the run ends`,
      },
      note: 'scratch study of an operational qualification',
      dataset: d,
    })),
    ...verified.packages.map((p): ErasureUnitInput => ({
      unitId: `${p.bucket}/${p.prefix}`,
      event: 'package.deleted',
      targets: { studyId },
      reason: {
        kind: 'retention',
        legalBasis: 'operational qualification: the scratch study is kept only for the run that made it',
        detail: `raw upload s3://${p.bucket}/${p.prefix} of scratch study ${studyId}, removed when the run ends`,
      },
      note: 'scratch study of an operational qualification',
      objects: { targets: [{ bucket: p.bucket, prefixes: [p.prefix], bypassGovernance: false }] },
    })),
  ];
  const rules = [...verified.rules];
  const certificates = [...verified.certificates];
  if (units.length > 0) {
    setPhase(`operational qualification: deleting scratch study ${studyId}`);
    const result = await eraseUnits('oq-scratch-study', {
      jurisdiction: auth.jurisdiction,
      label: `operational qualification ${auth.requestId}: scratch study ${studyId}`,
      bundled: false,
      principal: auth.principal,
      requestedBy: auth.eSignature,
      approvedBy: [auth.eSignature],
      requestId: auth.requestId,
      details: { studyId },
      units,
    });
    rules.push({
      check: 'oq.functions',
      rule: `the scratch study ${studyId} is deleted (datasets and raw uploads), each with a certificate`,
      ok: result.failed.length === 0 && result.erased.length === units.length,
      detail:
        result.failed.length === 0
          ? `${result.erased.length} units, ${result.erased.reduce((n, e) => n + e.versions, 0)} versions`
          : result.failed.map((f) => `${f.unitId}: ${f.reason}`).join('; '),
    });
    certificates.push(...result.erased.slice(0, 2).map((e) => e.certificateId));
  }
  return { rules, certificates };
}

/** `qr-<jurisdiction>-<UTC start, to the second>-<8 hex>`. */
function reportIdOf(jurisdiction: string): string {
  const at = workflowInfo()
    .startTime.toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
  return `qr-${jurisdiction}-${at}-${uuid4().slice(0, 8)}`;
}

/**
 * A qualification run (QA, e-signed): the installation inventory taken by the jurisdiction's worker, judged against
 * the requirements and the approved baseline, each check's evidence stored write-once; the report waits for QA's
 * signature, then is stored write-once with its HTML page in the jurisdiction's evidence bucket.
 */
export async function qualifyWorkflow(raw: SignedWorkflowInput): Promise<QualificationResult> {
  const status = showRunning();
  const auth = await authorize(raw, 'qualify.run', QualifyParamsSchema);
  const startedAt = new Date().toISOString();
  const phases = PHASES[auth.params.phase];
  const reportId = reportIdOf(auth.jurisdiction);
  setPhase('taking the installation inventory');
  const taken = await takeInventory(auth.jurisdiction);
  const rules = [...taken.rules];
  if (phases.includes('OQ')) {
    setPhase('operational qualification: refused requests');
    rules.push(...(await trustProbes(raw, auth)));
    setPhase('operational qualification: scratch data deleted with a certificate');
    const scratch = await scratchDeletion(auth, reportId);
    rules.push(...scratch.rules);
    const functional = await functionalTests(auth, status, startedAt);
    rules.push(...functional.rules);
    setPhase('operational qualification: storage, audit trail, certificates, replay');
    rules.push(
      ...(await probes.operationalChecksActivity({
        certificates: [...scratch.certificates, ...functional.certificates],
      })),
    );
  }
  if (phases.includes('PQ')) {
    setPhase('performance qualification: the shipped pipelines on the reference datasets');
    rules.push(...(await probes.performanceChecksActivity()));
  }
  const inventory: Inventory = { ...taken, rules };
  setPhase('judging the installation against the requirements and the baseline');
  const draft = await qualification.prepareReportActivity({
    reportId,
    phases,
    runBy: auth.eSignature,
    startedAt,
    waive: auth.params.waive,
    inventory,
  });
  return awaitQaSignature(auth, draft, { requestId: auth.requestId });
}

/**
 * Records the installation as the next configuration baseline (QA, e-signed): refused while the installation breaks a
 * rule; in force once QA signs it.
 */
export async function baselineWorkflow(raw: SignedWorkflowInput): Promise<QualificationResult> {
  showRunning();
  const auth = await authorize(raw, 'baseline.record', BaselineParamsSchema);
  setPhase('taking the installation inventory');
  const inventory = await takeInventory(auth.jurisdiction);
  const draft = await qualification.prepareBaselineActivity({ inventory, recordedAt: new Date().toISOString() });
  return awaitQaSignature(auth, draft, { requestId: auth.requestId });
}
