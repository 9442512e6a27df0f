import type { S3Client } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import { ErrorType, ingestWorkflowId, nonRetryable } from '../contracts';
import { assertOwnJurisdiction } from './guards';
import { evidenceRetainUntil, putEvidence } from '../lib/audit/store';
import { canonicalJson } from '../lib/crypto/canonical';
import type { SignerMaterial } from '../lib/pki/authority';
import { evaluate } from '../lib/qualification/checks';
import {
  baselineKeys,
  lastBaselineVersion,
  qaSignatureProblems,
  readCurrentBaseline,
  renderReportHtml,
  reportKeys,
  sha256Hex,
} from '../lib/qualification/documents';
import { driftFindings, findingKey, writeDeviationRecord } from '../lib/qualification/deviations';
import { takeInventory, type InventoryPart } from '../lib/qualification/inventory';
import {
  auditTrailRules,
  certificateRules,
  replayRules,
  residencyProbes,
  scratchPrefix,
  writeScratchData,
} from '../lib/qualification/operational';
import { performanceRules } from '../lib/qualification/performance';
import { curateTable } from './curate-table';
import { loadRequirements } from '../lib/qualification/requirements';
import { getObjectOrUndefined, listObjects } from '../lib/storage/objects';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { JURISDICTIONS } from '../jurisdictions';
import {
  assessChange,
  changeContentKey,
  controlledKind,
  loadedRulesSha256,
  writeChangeRecord,
} from '../lib/qualification/change';
import { INSTALL_ROOT } from '../lib/runtime/install';
import { listDatasetRecords, readDatasetRecord, readRunDocument, readStudyRecord } from '../lib/storage/catalog';
import { packagePrefix } from '../lib/storage/layout';
import type { IngestPackageResult } from '../schemas/ingest';
import type { SubjectRequestStatus } from '../schemas/subject-request';
import type { RunDocument } from '../schemas/preprocess';
import type { StudyRecord } from '../schemas/dataset';
import type { Jurisdiction } from '../schemas/jurisdiction';
import {
  ReportContentSchema,
  type Baseline,
  type ChangeImpact,
  type ChangeRecord,
  type CheckResult,
  type FunctionalReport,
  type DeviationRecord,
  type DriftFinding,
  type Inventory,
  type QaApproval,
  type QualificationPhase,
  type QualifyParams,
  type ReportContent,
  type Verdict,
} from '../schemas/qualification';
import type { ESignature } from '../schemas/request';

export interface QualificationActivityDeps {
  s3: S3Client;
  jurisdiction: Jurisdiction;
  temporal: () => Promise<Client>;
  signer: () => Promise<SignerMaterial>;
  caPem: () => string;
}

/** A document awaiting QA's signature: its bytes (base64) and their SHA-256. */
export interface DraftDocument {
  document: string;
  content: string;
  sha256: string;
  verdict: Verdict | null;
  version: number | null;
}

/** Qualification evidence is kept as long as the audit trail it belongs with. */
const RETENTION_CLASS = 'audit-trail';

/** Refuses a path that is not a controlled file of this jurisdiction's installation. */
function refuseUncontrolled(file: string, jurisdiction: string): void {
  const kind = controlledKind(file);
  if (!kind) {
    throw nonRetryable(
      ErrorType.InvalidInput,
      `${file} is not a controlled file: jurisdictions/<id>.json, pipelines/<name>/… or qualification/requirements.yaml`,
    );
  }
  if (kind === 'jurisdiction' && file !== `jurisdictions/${jurisdiction}.json`) {
    throw nonRetryable(
      ErrorType.JurisdictionViolation,
      `${file} is changed in its own jurisdiction, not ${jurisdiction}`,
    );
  }
}

export function createQualificationActivities(deps: QualificationActivityDeps) {
  const { s3, jurisdiction } = deps;
  const bucket = jurisdiction.buckets.evidence;
  const retainUntil = () => evidenceRetainUntil(jurisdiction, RETENTION_CLASS, new Date().toISOString());
  const getEvidenceBytes = async (key: string) => {
    const body = await getObjectOrUndefined(s3, bucket, key);
    if (!body) throw nonRetryable(ErrorType.InvalidInput, `${key}: not in ${bucket}`);
    return body;
  };

  return {
    /** The installation as this worker finds it (IQ). */
    async takeInventoryActivity(): Promise<Inventory> {
      return takeInventory({
        s3,
        jurisdiction,
        temporal: deps.temporal,
        signerCertificatePem: async () => (await deps.signer()).certificatePem,
        caPem: deps.caPem,
      });
    },

    /**
     * Judges the inventory against the requirements and the approved baseline, stores one evidence item per check
     * (write-once), and returns the report for QA to sign.
     */
    async prepareReportActivity(input: {
      reportId: string;
      phases: QualificationPhase[];
      runBy: ESignature;
      startedAt: string;
      waive: QualifyParams['waive'];
      inventory: Inventory;
    }): Promise<DraftDocument> {
      const { inventory } = input;
      const requirements = loadRequirements();
      const current = await readCurrentBaseline(s3, bucket, deps.caPem());
      const baseline = current?.baseline ?? null;
      const keys = reportKeys(input.reportId);
      const evidence = new Map<string, CheckResult['evidence']>();
      const checks = [...new Set([...inventory.items.map((i) => i.check), ...inventory.rules.map((r) => r.check)])];
      for (const check of checks.sort()) {
        const body = Buffer.from(
          canonicalJson({
            format: 'steward-qualification-evidence/1',
            reportId: input.reportId,
            check,
            takenAt: inventory.takenAt,
            worker: inventory.worker,
            observed: inventory.items.filter((i) => i.check === check),
            rules: inventory.rules.filter((r) => r.check === check),
            baseline: baseline
              ? { version: baseline.version, items: baseline.items.filter((i) => i.check === check) }
              : null,
          }),
        );
        await putEvidence(s3, bucket, keys.evidence(check), body, 'application/json', retainUntil());
        evidence.set(check, { check, key: keys.evidence(check), sha256: sha256Hex(body), bytes: body.length });
      }
      const judged = evaluate(requirements, input.phases, inventory, baseline, input.waive, evidence);
      const value = (id: string) => inventory.items.find((i) => i.id === id)?.value ?? 'unknown';
      const report: ReportContent = ReportContentSchema.parse({
        format: 'steward-qualification/1',
        reportId: input.reportId,
        jurisdiction: jurisdiction.id,
        phases: input.phases,
        startedAt: input.startedAt,
        completedAt: new Date().toISOString(),
        runBy: input.runBy,
        environment: {
          worker: inventory.worker,
          source: inventory.source,
          node: value('runtime.node'),
          temporalServer: value('tool.temporal-server.version'),
          versitygw: value('tool.versitygw.sha256'),
        },
        baseline: current ? { version: current.baseline.version, sha256: current.sha256 } : null,
        ...judged,
      });
      const content = Buffer.from(JSON.stringify(report, null, 2));
      return {
        document: input.reportId,
        content: content.toString('base64'),
        sha256: sha256Hex(content),
        verdict: report.verdict,
        version: null,
      };
    },

    /**
     * The operational checks a worker makes itself (OQ): another jurisdiction's buckets refused by storage, the audit
     * trail recomputed, deletion certificates verified by Steward and OpenSSL, the recorded histories replayed.
     */
    async operationalChecksActivity(input: { certificates: string[] }): Promise<InventoryPart['rules']> {
      const caPem = deps.caPem();
      return [
        ...(await residencyProbes(s3, jurisdiction)),
        ...(await auditTrailRules(s3, jurisdiction, caPem)),
        ...(await certificateRules(s3, jurisdiction, caPem, input.certificates)),
        ...(await replayRules(process.env.STEWARD_WORKFLOW_BUNDLE)),
      ];
    },

    /** The operational qualification's scratch data (synthetic, no personal data), for it to delete with a certificate. */
    async writeScratchDataActivity(input: {
      reportId: string;
    }): Promise<{ bucket: string; prefix: string; keys: string[] }> {
      const keys = await writeScratchData(s3, jurisdiction, input.reportId);
      return { bucket: jurisdiction.buckets.landing, prefix: scratchPrefix(input.reportId), keys };
    },

    /**
     * Checks what the testers' script reports it did in the scratch study, from Temporal and storage (OQ): the good
     * package curated into the catalog, the damaged one rejected and quarantined, the subject's erasure completed with
     * a certificate. Returns the scratch study's datasets and raw uploads, for the run to delete with certificates.
     */
    async verifyFunctionalActivity(input: { studyId: string; since: string; report: FunctionalReport }) {
      const client = await deps.temporal();
      const { report, studyId } = input;
      const rules: InventoryPart['rules'] = [];
      const rule = (name: string, ok: boolean, detail: string) =>
        rules.push({ check: 'oq.functions', rule: name, ok, detail: detail.slice(0, 1500) });
      for (const problem of report.problems) rule('the testers’ script ran every step', false, problem);
      const fresh = async (workflowId: string) => {
        const d = await client.workflow.getHandle(workflowId).describe();
        if (d.startTime.toISOString() < input.since) throw new Error(`${workflowId} started before this run`);
        return d;
      };
      const packages: { bucket: string; prefix: string }[] = [];
      const curatedRule = 'a good package of the scratch study is curated into the catalog';
      if (!report.curated) rule(curatedRule, false, 'the script reported no ingestion of a good package');
      else {
        const { workflowId, packageId } = report.curated;
        try {
          if (workflowId !== ingestWorkflowId(jurisdiction.id, packageId))
            throw new Error(`${workflowId} is not the ingestion of ${packageId}`);
          const d = await fresh(workflowId);
          const result = (await client.workflow.getHandle(workflowId).result()) as IngestPackageResult;
          const record = await readDatasetRecord(s3, jurisdiction.buckets.catalog, result.datasetId);
          const ok =
            d.status.name === 'COMPLETED' &&
            result.outcome === 'curated' &&
            record?.studyId === studyId &&
            record.rows.curated > 0;
          rule(
            curatedRule,
            ok,
            `${workflowId}: ${d.status.name}, ${result.outcome}; dataset ${result.datasetId} of ${record?.studyId ?? 'no record'}, ${record?.rows.curated ?? 0} rows curated`,
          );
          packages.push({ bucket: jurisdiction.buckets.landing, prefix: packagePrefix(packageId) });
        } catch (error) {
          rule(curatedRule, false, `${workflowId}: ${(error as Error).message}`);
        }
      }
      const rejectedRule = 'a damaged package of the scratch study is rejected and kept in quarantine';
      if (!report.rejected) rule(rejectedRule, false, 'the script reported no ingestion of a damaged package');
      else {
        const { workflowId, packageId } = report.rejected;
        try {
          if (workflowId !== ingestWorkflowId(jurisdiction.id, packageId))
            throw new Error(`${workflowId} is not the ingestion of ${packageId}`);
          const d = await fresh(workflowId);
          const failure = await client.workflow
            .getHandle(workflowId)
            .result()
            .then(
              () => undefined,
              (error: unknown) => {
                let root: unknown = error;
                while (root instanceof Error && root.cause && !(root instanceof ApplicationFailure)) root = root.cause;
                return root instanceof ApplicationFailure ? root : undefined;
              },
            );
          const quarantined = await listObjects(s3, jurisdiction.buckets.quarantine, packagePrefix(packageId));
          const ok =
            d.status.name === 'FAILED' && failure?.type === ErrorType.PackageRejected && quarantined.length > 0;
          rule(
            rejectedRule,
            ok,
            `${workflowId}: ${d.status.name}, ${failure?.type ?? 'no failure'}: ${failure?.message.slice(0, 300) ?? ''}; ${quarantined.length} objects in quarantine`,
          );
          packages.push({ bucket: jurisdiction.buckets.quarantine, prefix: packagePrefix(packageId) });
        } catch (error) {
          rule(rejectedRule, false, `${workflowId}: ${(error as Error).message}`);
        }
      }
      const erasureRule = "a subject's erasure request in the scratch study completes with a certificate";
      const certificates: string[] = [];
      if (!report.erasure) rule(erasureRule, false, 'the script reported no erasure request');
      else {
        const { workflowId } = report.erasure;
        try {
          if (!workflowId.startsWith(`dsr-${jurisdiction.id}-`))
            throw new Error('not a subject request of this jurisdiction');
          await fresh(workflowId);
          const done = (await client.workflow.getHandle(workflowId).result()) as SubjectRequestStatus;
          const certificateId = typeof done.outcome.certificateId === 'string' ? done.outcome.certificateId : null;
          const completed = done.state === 'completed' || done.state === 'completed-with-exemptions';
          const ok = done.kind === 'erasure' && done.studyId === studyId && completed && !!certificateId;
          rule(erasureRule, ok, `${workflowId}: ${done.kind} ${done.state}, certificate ${certificateId ?? 'none'}`);
          if (certificateId) certificates.push(certificateId);
        } catch (error) {
          rule(erasureRule, false, `${workflowId}: ${(error as Error).message}`);
        }
      }
      const datasets = (await listDatasetRecords(s3, jurisdiction.buckets.catalog))
        .filter((d) => d.studyId === studyId && d.createdAt >= input.since)
        .map((d) => ({ datasetId: d.datasetId, studyId: d.studyId }));
      return { rules, datasets, packages, certificates };
    },

    /** The performance checks (PQ) against the acceptance criteria in the requirements file. */
    async performanceChecksActivity(): Promise<InventoryPart['rules']> {
      const { performance } = loadRequirements();
      if (!performance) {
        return [
          {
            check: 'pq.pipelines',
            rule: 'the requirements file records the performance acceptance criteria',
            ok: false,
            detail: 'qualification/requirements.yaml has no performance section',
          },
        ];
      }
      return performanceRules(performance, curateTable);
    },

    /** What a drift check finds: each difference from the baseline in force and each broken rule, with its risk. */
    async driftFindingsActivity(input: {
      inventory: Inventory;
    }): Promise<{ baseline: number | null; findings: (DriftFinding & { key: string })[] }> {
      const current = await readCurrentBaseline(s3, bucket, deps.caPem());
      const findings = driftFindings(loadRequirements(), input.inventory, current?.baseline ?? null);
      return {
        baseline: current?.baseline.version ?? null,
        findings: findings.map((f) => ({ ...f, key: findingKey(jurisdiction.id, f) })),
      };
    },

    /** A deviation's record as it now stands, in the catalog bucket (what preprocessing checks and QA lists). */
    async writeDeviationRecordActivity(record: DeviationRecord): Promise<void> {
      assertOwnJurisdiction(jurisdiction, record.jurisdiction);
      await writeDeviationRecord(s3, jurisdiction.buckets.catalog, record);
    },

    /**
     * A proposed change to a controlled file of this installation: its dry run and impact, from the file as it is now,
     * the proposed content and the jurisdiction's catalog.
     */
    async assessChangeActivity(input: {
      file: string;
      content: string | null;
      sha256: string | null;
    }): Promise<ChangeImpact> {
      const proposed = input.content === null ? null : Buffer.from(input.content, 'base64');
      refuseUncontrolled(input.file, jurisdiction.id);
      if (proposed && sha256Hex(proposed) !== input.sha256) {
        throw nonRetryable(
          ErrorType.InvalidInput,
          `${input.file}: the proposed content does not have the SHA-256 the request names`,
        );
      }
      const full = path.join(INSTALL_ROOT, input.file);
      const current = existsSync(full) ? await readFile(full) : undefined;
      const catalog = jurisdiction.buckets.catalog;
      const datasets = await listDatasetRecords(s3, catalog);
      const studies = new Map<string, StudyRecord>();
      const runs = new Map<string, RunDocument>();
      for (const d of datasets) {
        if (!studies.has(d.studyId))
          studies.set(d.studyId, await readStudyRecord(s3, catalog, jurisdiction.id, d.studyId));
        if (d.run && !runs.has(d.run.jobId)) {
          const run = await readRunDocument(s3, catalog, d.run.jobId);
          if (run) runs.set(d.run.jobId, run);
        }
      }
      return assessChange({
        jurisdiction,
        file: input.file,
        current,
        proposed,
        datasets,
        studies,
        runs,
        requirements: loadRequirements(),
        now: new Date().toISOString(),
      });
    },

    /** The proposed content, write-once in the evidence bucket: what QA approved, kept with the change's audit. */
    async storeChangeContentActivity(input: { changeId: string; file: string; content: string }) {
      const body = Buffer.from(input.content, 'base64');
      const key = changeContentKey(input.changeId, input.file);
      await putEvidence(s3, bucket, key, body, 'application/octet-stream', retainUntil());
      return { key, sha256: sha256Hex(body), bytes: body.length };
    },

    /** A change's record as it now stands, in the catalog bucket (what `steward change list` shows). */
    async writeChangeRecordActivity(record: ChangeRecord): Promise<void> {
      assertOwnJurisdiction(jurisdiction, record.jurisdiction);
      await writeChangeRecord(s3, jurisdiction.buckets.catalog, record);
    },

    /**
     * Applies an approved change to the installation: the file is replaced atomically (written beside it, then renamed)
     * or removed, refused when it is no longer the file the impact was computed from.
     */
    async applyChangeActivity(input: {
      file: string;
      contentKey: string | null;
      sha256: string | null;
      before: string | null;
    }) {
      refuseUncontrolled(input.file, jurisdiction.id);
      const full = path.join(INSTALL_ROOT, input.file);
      const now = existsSync(full) ? sha256Hex(await readFile(full)) : null;
      if (now === input.sha256) return { applied: true, already: true };
      if (now !== input.before) {
        throw nonRetryable(
          ErrorType.RequestConflict,
          `${input.file} changed since the change was proposed (SHA-256 ${now ?? 'none'}, the impact was computed from ${input.before ?? 'no file'}): propose it again`,
        );
      }
      if (input.contentKey === null) {
        await rm(full);
        return { applied: true, already: false };
      }
      const body = await getEvidenceBytes(input.contentKey);
      if (sha256Hex(body) !== input.sha256) {
        throw nonRetryable(
          ErrorType.InvalidInput,
          `${input.contentKey}: does not have the approved SHA-256 ${input.sha256}`,
        );
      }
      await mkdir(path.dirname(full), { recursive: true });
      const temporary = `${full}.steward-change-${process.pid}`;
      await writeFile(temporary, body);
      await rename(temporary, full);
      return { applied: true, already: false };
    },

    /**
     * Waits (by its retries) until this worker runs the jurisdiction rules an approved change wrote: the rules are read
     * when a worker starts, so this holds until the workers were restarted.
     */
    async awaitLoadedRulesActivity(input: { sha256: string }): Promise<void> {
      const loaded = loadedRulesSha256(JURISDICTIONS[jurisdiction.id]!);
      if (loaded !== input.sha256) {
        throw ApplicationFailure.retryable(
          `the ${jurisdiction.id} worker still runs the rules it loaded when it started (SHA-256 ${loaded}): restart the workers to load the approved ones (${input.sha256})`,
          'AwaitingRestart',
        );
      }
    },

    /** The inventory as the next baseline version, for QA to approve; refused when a rule of the installation fails. */
    async prepareBaselineActivity(input: { inventory: Inventory; recordedAt: string }): Promise<DraftDocument> {
      const broken = input.inventory.rules.filter((r) => !r.ok);
      if (broken.length > 0) {
        throw nonRetryable(
          ErrorType.InvalidInput,
          `the installation breaks rules a baseline may not hold: ${broken.map((r) => `${r.check}: ${r.rule}${r.detail ? ` (${r.detail})` : ''}`).join('; ')}`,
        );
      }
      const version = (await lastBaselineVersion(s3, bucket)) + 1;
      const baseline: Baseline = {
        format: 'steward-baseline/1',
        jurisdiction: jurisdiction.id,
        version,
        recordedAt: input.recordedAt,
        source: input.inventory.source,
        items: input.inventory.items,
      };
      const content = Buffer.from(JSON.stringify(baseline, null, 2));
      return {
        document: `baseline ${version}`,
        content: content.toString('base64'),
        sha256: sha256Hex(content),
        verdict: null,
        version,
      };
    },

    /**
     * Checks QA's signature of a draft (their CMS over its bytes, their signed approval naming its SHA-256) and stores
     * the document, its signature and the approval write-once (and a report's HTML page); refused, storing nothing,
     * when the signature does not hold.
     */
    async storeQaSignedActivity(input: {
      draft: DraftDocument;
      p7s: string;
      approval: QaApproval;
    }): Promise<{ keys: string[] }> {
      const content = Buffer.from(input.draft.content, 'base64');
      const p7s = Buffer.from(input.p7s, 'base64');
      const problems = qaSignatureProblems(content, p7s, input.approval, deps.caPem());
      if (problems.length > 0) {
        throw nonRetryable(ErrorType.AccessDenied, `QA signature refused: ${problems.join('; ')}`);
      }
      const approval = Buffer.from(JSON.stringify(input.approval, null, 2));
      const until = retainUntil();
      if (input.draft.version !== null) {
        const keys = baselineKeys(input.draft.version);
        if ((await listObjects(s3, bucket, keys.dir)).length > 0) {
          throw nonRetryable(
            ErrorType.InvalidInput,
            `baseline ${input.draft.version} was recorded meanwhile by another request: record the baseline again`,
          );
        }
        await putEvidence(s3, bucket, keys.json, content, 'application/json', until);
        await putEvidence(s3, bucket, keys.p7s, p7s, 'application/pkcs7-signature', until);
        // The approval last: a baseline is in force only once it is there.
        await putEvidence(s3, bucket, keys.approval, approval, 'application/json', until);
        return { keys: [keys.json, keys.p7s, keys.approval] };
      }
      const report = ReportContentSchema.parse(JSON.parse(content.toString('utf8')));
      const keys = reportKeys(report.reportId);
      const html = Buffer.from(renderReportHtml(report, input.approval));
      await putEvidence(s3, bucket, keys.json, content, 'application/json', until);
      await putEvidence(s3, bucket, keys.p7s, p7s, 'application/pkcs7-signature', until);
      await putEvidence(s3, bucket, keys.html, html, 'text/html; charset=utf-8', until);
      await putEvidence(s3, bucket, keys.approval, approval, 'application/json', until);
      return { keys: [keys.json, keys.p7s, keys.html, keys.approval] };
    },
  };
}
