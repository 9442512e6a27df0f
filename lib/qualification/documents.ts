import { createHash, createPublicKey, verify, X509Certificate } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import {
  BaselineSchema,
  QaApprovalSchema,
  QaSignParamsSchema,
  ReportContentSchema,
  type Baseline,
  type QaApproval,
  type ReportContent,
} from '../../schemas/qualification';
import { RequestBodySchema } from '../../schemas/request';
import { verifyDetached } from '../pki/cms';
import { certificateInfo, chainProblem } from '../pki/x509';
import { getObjectOrUndefined, listObjects } from '../storage/objects';

/**
 * Where qualification evidence lives in a jurisdiction's evidence bucket, write-once:
 * `qualification/reports/<report id>/{report.json,report.p7s,approval.json,report.html,evidence/<check>.json}` and
 * `qualification/baselines/<version>/{baseline.json,baseline.p7s,approval.json}`.
 */
export const REPORTS_PREFIX = 'qualification/reports/';
export const BASELINES_PREFIX = 'qualification/baselines/';

export function reportKeys(reportId: string) {
  const dir = `${REPORTS_PREFIX}${reportId}/`;
  return {
    dir,
    json: `${dir}report.json`,
    p7s: `${dir}report.p7s`,
    approval: `${dir}approval.json`,
    html: `${dir}report.html`,
    evidence: (check: string) => `${dir}evidence/${check}.json`,
  };
}

export function baselineKeys(version: number) {
  const dir = `${BASELINES_PREFIX}${String(version).padStart(6, '0')}/`;
  return { dir, json: `${dir}baseline.json`, p7s: `${dir}baseline.p7s`, approval: `${dir}approval.json` };
}

export const sha256Hex = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/**
 * Why QA's signature of a document does not hold, or [] when it does: their detached CMS signature over the
 * document's bytes verifies and its signer certificate chains to the Steward CA with role `qa`; the signed request of
 * the approval names the document's SHA-256, verifies with the same certificate, and its e-signature states the
 * signer's printed name, time and meaning.
 */
export function qaSignatureProblems(content: Buffer, p7s: Buffer, approval: QaApproval, caPem: string): string[] {
  const problems: string[] = [];
  let signerPem: string;
  try {
    signerPem = verifyDetached(p7s, content).signerCertificatePem;
  } catch (error) {
    return [`the CMS signature does not verify: ${(error as Error).message}`];
  }
  const at = new Date(approval.eSignature.signedAt);
  const chain = chainProblem(signerPem, caPem, at);
  if (chain) problems.push(`the signer certificate: ${chain}`);
  const info = certificateInfo(signerPem);
  if (info.role !== 'qa') problems.push(`the document is signed by ${info.name} (role ${info.role}), not by QA`);
  const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256.replaceAll(':', '').toLowerCase();
  if (fingerprint(approval.request.certificate) !== fingerprint(signerPem)) {
    problems.push('the approval was signed with another certificate than the document');
  }
  if (approval.eSignature.certificateFingerprint !== fingerprint(signerPem)) {
    problems.push('the e-signature names another certificate than the one that signed the document');
  }
  const ok = verify(
    'sha256',
    Buffer.from(approval.request.body),
    createPublicKey(approval.request.certificate),
    Buffer.from(approval.request.signature, 'base64'),
  );
  if (!ok) problems.push('the signed approval request does not verify: it was altered');
  const body = RequestBodySchema.safeParse(JSON.parse(approval.request.body));
  const params = body.success ? QaSignParamsSchema.safeParse(body.data.params) : undefined;
  if (!params?.success) problems.push('the approval request is not a QA signature');
  else if (params.data.sha256 !== sha256Hex(content)) {
    problems.push(`the approval names SHA-256 ${params.data.sha256}, the document has ${sha256Hex(content)}`);
  }
  if (approval.eSignature.recordSha256 !== sha256Hex(approval.request.body)) {
    problems.push('the e-signature does not belong to the approval request');
  }
  return problems;
}

/** The approved baseline in force: the highest version stored with a QA approval that verifies; null when none. */
export async function readCurrentBaseline(
  s3: S3Client,
  bucket: string,
  caPem: string,
): Promise<{ baseline: Baseline; sha256: string; approval: QaApproval } | null> {
  const versions = [
    ...new Set(
      (await listObjects(s3, bucket, BASELINES_PREFIX))
        .map((o) => /^qualification\/baselines\/(\d{6})\/approval\.json$/.exec(o.key)?.[1])
        .filter((v): v is string => !!v),
    ),
  ]
    .map(Number)
    .sort((a, b) => b - a);
  for (const version of versions) {
    const keys = baselineKeys(version);
    const [json, p7s, approvalRaw] = await Promise.all([
      getObjectOrUndefined(s3, bucket, keys.json),
      getObjectOrUndefined(s3, bucket, keys.p7s),
      getObjectOrUndefined(s3, bucket, keys.approval),
    ]);
    if (!json || !p7s || !approvalRaw) continue;
    const approval = QaApprovalSchema.parse(JSON.parse(approvalRaw.toString('utf8')));
    if (qaSignatureProblems(json, p7s, approval, caPem).length > 0) continue;
    return { baseline: BaselineSchema.parse(JSON.parse(json.toString('utf8'))), sha256: sha256Hex(json), approval };
  }
  return null;
}

/** The baseline in force (its version and SHA-256), as run documentation and deletion certificates name it. */
export async function baselineInForce(
  s3: S3Client,
  bucket: string,
  caPem: string,
): Promise<{ version: number; sha256: string } | null> {
  const current = await readCurrentBaseline(s3, bucket, caPem);
  return current ? { version: current.baseline.version, sha256: current.sha256 } : null;
}

/** The highest baseline version stored (approved or not), 0 when none. */
export async function lastBaselineVersion(s3: S3Client, bucket: string): Promise<number> {
  const versions = (await listObjects(s3, bucket, BASELINES_PREFIX))
    .map((o) => Number(/^qualification\/baselines\/(\d{6})\//.exec(o.key)?.[1] ?? 0))
    .filter((v) => v > 0);
  return versions.length ? Math.max(...versions) : 0;
}

export function parseReport(content: Buffer, source: string): ReportContent {
  try {
    return ReportContentSchema.parse(JSON.parse(content.toString('utf8')));
  } catch (error) {
    throw new Error(`${source}: not a Steward qualification report (${(error as Error).message.split('\n')[0]})`);
  }
}

const escape = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** The report as a self-contained HTML page (no scripts, no external resources) for people to read. */
export function renderReportHtml(report: ReportContent, approval: QaApproval): string {
  const verdictColour = { QUALIFIED: '#1b7f3b', 'NOT QUALIFIED': '#b3261e', PROVISIONAL: '#9a6700' }[report.verdict];
  const outcomeColour = (o: string) => (o === 'passed' ? '#1b7f3b' : o === 'waived' ? '#9a6700' : '#b3261e');
  const s = approval.eSignature;
  const rows = (cells: string[][]) => cells.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('\n');
  const env = report.environment;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Qualification report ${escape(report.reportId)}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#1d1d1f;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.1rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ddd;padding:.3rem .5rem;vertical-align:top;text-align:left}
th{background:#f5f5f7}.verdict{display:inline-block;padding:.3rem .8rem;border-radius:.3rem;color:#fff;font-weight:600;background:${verdictColour}}
code{font-size:12px;word-break:break-all}.muted{color:#666}
</style></head><body>
<h1>Qualification report — ${escape(report.jurisdiction)} (${report.phases.join(', ')})</h1>
<p class="muted">${escape(report.reportId)} · ${escape(report.startedAt)} → ${escape(report.completedAt)} UTC</p>
<p><span class="verdict">${report.verdict}</span></p>
${report.causes.length ? `<ul>${report.causes.map((c) => `<li>${escape(c)}</li>`).join('')}</ul>` : ''}
<h2>Signatures</h2>
<table><tr><th>Role</th><th>Printed name</th><th>Date and time (UTC)</th><th>Meaning</th><th>Certificate</th></tr>
${rows([
  [
    'ran by',
    escape(report.runBy.printedName),
    escape(report.runBy.signedAt),
    escape(report.runBy.meaning),
    `<code>${escape(report.runBy.certificateSerial)}</code>`,
  ],
  [
    'approved by',
    escape(s.printedName),
    escape(s.signedAt),
    escape(s.meaning),
    `<code>${escape(s.certificateSerial)}</code>`,
  ],
])}</table>
<h2>Environment</h2>
<table>${rows([
    ['Worker', escape(`${env.worker.identity} on ${env.worker.hostname}`)],
    [
      'Source',
      `<code>${escape(env.source.commit ?? 'not a git checkout')}</code> ${env.source.clean === false ? '(uncommitted changes)' : ''}`,
    ],
    ['Node.js', escape(env.node)],
    ['Temporal server', escape(env.temporalServer)],
    ['versitygw binary SHA-256', `<code>${escape(env.versitygw)}</code>`],
    [
      'Baseline',
      report.baseline
        ? `version ${report.baseline.version}, SHA-256 <code>${report.baseline.sha256}</code>`
        : 'none approved',
    ],
  ])}</table>
<h2>Requirements</h2>
<table><tr><th>Id</th><th>Risk</th><th>Requirement</th><th>Check</th><th>Outcome</th></tr>
${rows(
  report.requirements.map((r) => [
    escape(r.id),
    r.risk,
    escape(r.text),
    `<code>${escape(r.check)}</code>`,
    `<b style="color:${outcomeColour(r.outcome)}">${r.outcome}</b>`,
  ]),
)}</table>
<h2>Checks and evidence</h2>
<table><tr><th>Check</th><th>Covers</th><th>Outcome</th><th>Findings</th><th>Evidence (SHA-256)</th></tr>
${rows(
  report.checks.map((c) => [
    `<code>${escape(c.id)}</code><br>${escape(c.title)}`,
    c.covers.join(', '),
    `<b style="color:${outcomeColour(c.outcome)}">${c.outcome}</b> (${c.items} items)`,
    c.findings.length ? `<ul>${c.findings.map((f) => `<li>${escape(f)}</li>`).join('')}</ul>` : '—',
    c.evidence ? `<code>${escape(c.evidence.key)}</code><br><code>${c.evidence.sha256}</code>` : 'none',
  ]),
)}</table>
<h2>Deviations</h2>
${report.deviations.length ? `<ul>${report.deviations.map((d) => `<li>${escape(d)}</li>`).join('')}</ul>` : '<p>None.</p>'}
<p class="muted">The signed record is report.json with its CMS signature report.p7s (verify with
<code>steward qualify verify</code> or <code>openssl cms -verify -binary -inform DER -in report.p7s -content report.json -CAfile ca.pem</code>).</p>
</body></html>
`;
}

/** A stored report's files, read from the evidence bucket or from a downloaded folder. */
export interface ReportFiles {
  json: Buffer;
  p7s: Buffer | undefined;
  approval: Buffer | undefined;
  /** Each evidence item the report names, by its key (undefined where it is missing). */
  evidence: (key: string) => Promise<Buffer | undefined>;
}

/**
 * Checks a stored report as an auditor would: QA's signature over its exact bytes, the approval naming its SHA-256,
 * and each evidence item it names present with its SHA-256. Any problem makes it NOT QUALIFIED, whatever it says.
 */
export async function verifyReport(
  files: ReportFiles,
  caPem: string,
): Promise<{ report: ReportContent | undefined; problems: string[]; verdict: ReportContent['verdict'] }> {
  const problems: string[] = [];
  let report: ReportContent | undefined;
  try {
    report = parseReport(files.json, 'report.json');
  } catch (error) {
    problems.push((error as Error).message);
  }
  if (!files.p7s || !files.approval) problems.push('the report is not signed (report.p7s or approval.json missing)');
  else {
    try {
      const approval = QaApprovalSchema.parse(JSON.parse(files.approval.toString('utf8')));
      problems.push(...qaSignatureProblems(files.json, files.p7s, approval, caPem));
    } catch (error) {
      problems.push(`approval.json: not a QA approval (${(error as Error).message.split('\n')[0]})`);
    }
  }
  for (const check of report?.checks ?? []) {
    if (!check.evidence) continue;
    const body = await files.evidence(check.evidence.key);
    if (!body) problems.push(`evidence ${check.evidence.key} is missing`);
    else if (sha256Hex(body) !== check.evidence.sha256) {
      problems.push(
        `evidence ${check.evidence.key} has SHA-256 ${sha256Hex(body)}, the report says ${check.evidence.sha256}`,
      );
    }
  }
  return { report, problems, verdict: problems.length > 0 ? 'NOT QUALIFIED' : report!.verdict };
}
