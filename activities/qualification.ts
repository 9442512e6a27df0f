import type { S3Client } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import { ErrorType, nonRetryable } from '../contracts';
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
import { takeInventory } from '../lib/qualification/inventory';
import { loadRequirements } from '../lib/qualification/requirements';
import { listObjects } from '../lib/storage/objects';
import type { Jurisdiction } from '../schemas/jurisdiction';
import {
  ReportContentSchema,
  type Baseline,
  type CheckResult,
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

export function createQualificationActivities(deps: QualificationActivityDeps) {
  const { s3, jurisdiction } = deps;
  const bucket = jurisdiction.buckets.evidence;
  const retainUntil = () => evidenceRetainUntil(jurisdiction, RETENTION_CLASS, new Date().toISOString());

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
      if (record.jurisdiction !== jurisdiction.id) {
        throw nonRetryable(
          ErrorType.JurisdictionViolation,
          `a deviation of ${record.jurisdiction} sent to ${jurisdiction.id}`,
        );
      }
      await writeDeviationRecord(s3, jurisdiction.buckets.catalog, record);
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
