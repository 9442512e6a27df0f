import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import type { Command } from 'commander';
import { z } from 'zod';
import {
  baselineWorkflowId,
  functionalTestsUpdate,
  progressQuery,
  qaSignUpdate,
  qualificationStatusQuery,
  qualificationWorkflowId,
  RequestKind,
} from '../../contracts';
import { getJurisdiction } from '../../jurisdictions';
import { signedInput } from '../../lib/client/request';
import { signDetached } from '../../lib/pki/cms';
import {
  readCurrentBaseline,
  REPORTS_PREFIX,
  reportKeys,
  verifyReport,
  type ReportFiles,
} from '../../lib/qualification/documents';
import { EXIT, UserError } from '../../lib/runtime/errors';
import { getObjectOrUndefined, listObjects } from '../../lib/storage/objects';
import { RequestIdSchema } from '../../schemas/cli';
import { JurisdictionIdSchema } from '../../schemas/jurisdiction';
import { ReportContentSchema, type QualificationStatus } from '../../schemas/qualification';
import type { baselineWorkflow, changeWorkflow, qualifyWorkflow } from '../../workflows';
import type { QualificationResult } from '../../workflows/qualify';
import { CommandContext, type GlobalOptions } from '../context';
import { runFunctionalTests } from '../qualification/functional';
import { defaultDataDir } from '../../lib/runtime/config';
import { parseOptions, requestIdOf } from '../options';
import { note, printJson, say } from '../output';

const WaiverSchema = z
  .string()
  .regex(/^[a-z]+\.[a-z-]+=.{3,}$/, 'must be <check>=<reason>, e.g. iq.gpu="no GPU node in this site"')
  .transform((s) => ({ check: s.slice(0, s.indexOf('=')), reason: s.slice(s.indexOf('=') + 1) }));

const QualifyOptionsSchema = z.object({
  jurisdiction: JurisdictionIdSchema,
  phase: z
    .enum(['iq', 'oq', 'pq', 'all'], {
      message: 'must be iq (installation), oq (operational), pq (performance) or all',
    })
    .default('iq'),
  waive: z.array(WaiverSchema).default([]),
  out: z.string().optional(),
  tester: z
    .array(
      z
        .string()
        .regex(/^(steward|dpo)=.+$/, 'must be steward=<identity dir> or dpo=<identity dir>')
        .transform((s) => ({
          role: s.slice(0, s.indexOf('=')) as 'steward' | 'dpo',
          dir: s.slice(s.indexOf('=') + 1),
        })),
    )
    .default([]),
  requestId: RequestIdSchema.optional(),
});

/** The testers' command contexts, each signing with its own identity: given with --tester, else the demo ones. */
function testerContexts(given: { role: 'steward' | 'dpo'; dir: string }[], g: GlobalOptions) {
  const dataDir = g.dataDir ? path.resolve(g.dataDir) : defaultDataDir();
  const dirOf = (role: 'steward' | 'dpo') => {
    const dir = given.find((t) => t.role === role)?.dir ?? path.join(dataDir, 'identities', role);
    if (!existsSync(dir)) {
      throw new UserError(
        `no ${role} identity at ${dir} for the operational tests: give --tester ${role}=<identity dir>`,
      );
    }
    return path.resolve(dir);
  };
  return {
    steward: CommandContext.create({ ...g, identity: dirOf('steward') }),
    dpo: CommandContext.create({ ...g, identity: dirOf('dpo') }),
  };
}

const BaselineOptionsSchema = z.object({
  jurisdiction: JurisdictionIdSchema,
  reason: z.string().trim().min(3).max(1000),
  requestId: RequestIdSchema.optional(),
});
const VerifyOptionsSchema = z
  .object({
    jurisdiction: JurisdictionIdSchema.optional(),
    dir: z.string().optional(),
    out: z.string().optional(),
    ca: z.string().optional(),
  })
  .refine((o) => !!o.dir !== !!o.jurisdiction, { message: 'give --jurisdiction (with a report id) or --dir' });

/**
 * Waits until the workflow holds its document for QA's signature (or has ended, whose error then surfaces), printing
 * its progress.
 */
export async function awaitDraft(
  handle: WorkflowHandle<typeof qualifyWorkflow | typeof baselineWorkflow | typeof changeWorkflow>,
): Promise<QualificationStatus> {
  let last = '';
  const retried = new Set<string>();
  for (;;) {
    const status = await handle.query(qualificationStatusQuery).catch(() => undefined);
    if (status && status.stage !== 'running') return status;
    const description = await handle.describe();
    if (description.status.name !== 'RUNNING') {
      await handle.result();
      throw new UserError(`${handle.workflowId} ended without a document to sign`, EXIT.failure);
    }
    const progress = await handle.query(progressQuery).catch(() => undefined);
    if (progress && progress.phase !== last) note(progress.phase);
    last = progress?.phase ?? last;
    for (const activity of description.raw.pendingActivities ?? []) {
      const failure = activity.lastFailure?.message;
      const key = `${activity.activityType?.name}#${activity.attempt}`;
      if (failure && (activity.attempt ?? 0) >= 2 && !retried.has(key)) {
        retried.add(key);
        note(`${activity.activityType?.name ?? 'a step'} is retrying (attempt ${activity.attempt}): ${failure}`);
      }
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * Signs the document a qualification or baseline workflow holds, as the QA identity of this command: a CMS signature
 * over its exact bytes (`openssl cms -verify` checks it) inside a signed approval with the meaning of the signature.
 */
export async function signDraft(
  ctx: CommandContext,
  handle: WorkflowHandle<typeof qualifyWorkflow | typeof baselineWorkflow | typeof changeWorkflow>,
  jurisdiction: string,
  status: QualificationStatus,
  meaning: string,
): Promise<QualificationStatus> {
  const identity = await ctx.identity();
  const content = Buffer.from(status.content!, 'base64');
  const caPem = readFileSync(path.join(identity.dir, 'ca.pem'), 'utf8');
  const p7s = signDetached(
    content,
    {
      certificatePem: identity.certificatePem,
      privateKeyPem: identity.key.export({ type: 'pkcs8', format: 'pem' }).toString(),
    },
    [caPem],
  );
  const { request } = signedInput(identity, {
    action: 'qualify.sign',
    jurisdiction,
    params: { document: status.document!, sha256: status.sha256!, p7s: p7s.toString('base64') },
    meaning,
  });
  return handle.executeUpdate(qaSignUpdate, { args: [{ request }] });
}

async function reportFilesFromBucket(
  ctx: CommandContext,
  jurisdiction: string,
  reportId: string,
): Promise<ReportFiles> {
  const j = getJurisdiction(jurisdiction);
  const s3 = ctx.s3(j.id);
  const keys = reportKeys(reportId);
  const json = await getObjectOrUndefined(s3, j.buckets.evidence, keys.json);
  if (!json) throw new UserError(`no report ${reportId} in ${j.buckets.evidence} (steward qualify list shows them)`);
  return {
    json,
    p7s: await getObjectOrUndefined(s3, j.buckets.evidence, keys.p7s),
    approval: await getObjectOrUndefined(s3, j.buckets.evidence, keys.approval),
    evidence: (key) => getObjectOrUndefined(s3, j.buckets.evidence, key),
  };
}

/** A downloaded report folder: report.json, report.p7s, approval.json and evidence/<check>.json. */
async function reportFilesFromDir(dir: string): Promise<ReportFiles> {
  const read = (name: string) => readFile(path.join(dir, name)).catch(() => undefined);
  const json = await read('report.json');
  if (!json) throw new UserError(`${dir}: no report.json (steward qualify verify <id> --out ${dir} downloads one)`);
  return {
    json,
    p7s: await read('report.p7s'),
    approval: await read('approval.json'),
    evidence: (key) => read(path.join('evidence', path.basename(key))),
  };
}

async function writeReportDir(dir: string, files: ReportFiles, html: Buffer | undefined, caPem: string) {
  await mkdir(path.join(dir, 'evidence'), { recursive: true });
  await writeFile(path.join(dir, 'report.json'), files.json);
  if (files.p7s) await writeFile(path.join(dir, 'report.p7s'), files.p7s);
  if (files.approval) await writeFile(path.join(dir, 'approval.json'), files.approval);
  if (html) await writeFile(path.join(dir, 'report.html'), html);
  await writeFile(path.join(dir, 'ca.pem'), caPem);
  const report = ReportContentSchema.safeParse(JSON.parse(files.json.toString('utf8')));
  for (const check of report.success ? report.data.checks : []) {
    if (!check.evidence) continue;
    const body = await files.evidence(check.evidence.key);
    if (body) await writeFile(path.join(dir, 'evidence', path.basename(check.evidence.key)), body);
  }
}

function printResult(ctx: CommandContext, result: QualificationResult, status: QualificationStatus) {
  if (ctx.json) printJson({ ...result, stage: status.stage });
}

export function registerQualifyCommands(program: Command, globals: () => GlobalOptions): void {
  const qualify = program
    .command('qualify')
    .description('qualify the running stack (QA, e-signed): IQ, OQ and PQ checks, a signed report with evidence')
    .option('--jurisdiction <id>', 'jurisdiction whose installation to qualify')
    .option(
      '--phase <phase>',
      'iq (installation), oq (operational: refused requests, residency, audit trail, certificates, replay), pq (performance: pipelines on reference data) or all',
      'iq',
    )
    .option(
      '--waive <check=reason>',
      'waive a low- or medium-risk check with the reason (repeatable); the verdict is then PROVISIONAL at best',
      (value: string, all: string[] = []) => [...all, value],
    )
    .option('--out <dir>', 'also download the signed report, its HTML page and evidence into this folder')
    .option(
      '--tester <role=dir>',
      "oq: the identity a tester of the role (steward, dpo) runs the scratch study's tests with (repeatable; default: the data dir's demo identities)",
      (value: string, all: string[] = []) => [...all, value],
    )
    .option('--request-id <id>', 'resume the run an interrupted command started (it prints its request id)')
    .addHelpText(
      'after',
      '\nThe report (report.json, signed as report.p7s by you, with report.html for people to read) is stored\n' +
        "write-once in the jurisdiction's evidence bucket under qualification/reports/<report id>/.\n" +
        'Exit codes: 0 QUALIFIED or PROVISIONAL, 1 NOT QUALIFIED.',
    )
    .action(async (raw: Record<string, unknown>) => {
      if (!raw.jurisdiction) throw new UserError('steward qualify: --jurisdiction <id> is required');
      const options = parseOptions(QualifyOptionsSchema, raw);
      const ctx = CommandContext.create(globals());
      try {
        const requestId = requestIdOf(options.requestId);
        const operational = options.phase === 'oq' || options.phase === 'all';
        const testers = operational ? testerContexts(options.tester, globals()) : undefined;
        // The operational qualification tries the trust boundary with a request of yours that your role may not make.
        const probe = operational
          ? (
              await ctx.sign({
                action: 'retention.preview',
                jurisdiction: options.jurisdiction,
                params: { jurisdiction: options.jurisdiction, dryRun: true },
                meaning: 'operational qualification probe: to be refused',
              })
            ).request
          : undefined;
        const handle = await ctx.startRequest<typeof qualifyWorkflow>('qualifyWorkflow', {
          workflowId: qualificationWorkflowId(options.jurisdiction, requestId),
          requestId,
          kind: RequestKind.Qualification,
          action: 'qualify.run',
          jurisdiction: options.jurisdiction,
          params: { phase: options.phase, waive: options.waive, ...(probe ? { probe } : {}) },
          meaning: 'run the qualification of the installation',
        });
        note(`qualification ${requestId} (workflow ${handle.workflowId})`);
        let draft = await awaitDraft(handle);
        if (draft.stage === 'awaiting-tests' && testers) {
          try {
            const report = await runFunctionalTests(testers, options.jurisdiction, draft.document!);
            const { request } = await ctx.sign({
              action: 'qualify.run',
              jurisdiction: options.jurisdiction,
              params: report,
              meaning: 'report the operational tests run in the scratch study',
            });
            await handle.executeUpdate(functionalTestsUpdate, { args: [{ request }] });
          } finally {
            await Promise.all([testers.steward.close(), testers.dpo.close()]);
          }
          draft = await awaitDraft(handle);
        }
        if (draft.stage === 'awaiting-signature') {
          const report = ReportContentSchema.parse(JSON.parse(Buffer.from(draft.content!, 'base64').toString('utf8')));
          const meaning =
            report.verdict === 'NOT QUALIFIED'
              ? 'review qualification: not qualified'
              : report.verdict === 'PROVISIONAL'
                ? 'approve qualification (provisional)'
                : 'approve qualification';
          await signDraft(ctx, handle, options.jurisdiction, draft, meaning);
        }
        const result = await handle.result();
        const j = getJurisdiction(options.jurisdiction);
        const files = await reportFilesFromBucket(ctx, j.id, result.document);
        const report = ReportContentSchema.parse(JSON.parse(files.json.toString('utf8')));
        if (options.out) {
          const html = await getObjectOrUndefined(ctx.s3(j.id), j.buckets.evidence, reportKeys(report.reportId).html);
          const identity = await ctx.identity();
          await writeReportDir(options.out, files, html, readFileSync(path.join(identity.dir, 'ca.pem'), 'utf8'));
        }
        if (ctx.json) printResult(ctx, result, { ...draft, stage: result.signed ? 'signed' : 'unsigned' });
        else {
          say(`${report.verdict}: ${report.reportId} (${report.jurisdiction}, ${report.phases.join(', ')})`);
          for (const cause of report.causes) say(`  - ${cause}`);
          for (const check of report.checks) {
            say(`  ${check.outcome.padEnd(6)} ${check.id.padEnd(20)} ${check.title} (${check.covers.join(', ')})`);
          }
          say(`  signed and stored: ${result.keys.join(', ')}`);
          if (options.out) say(`  downloaded to ${options.out} (open report.html in a browser)`);
        }
        if (report.verdict === 'NOT QUALIFIED') process.exitCode = EXIT.failure;
      } finally {
        await ctx.close();
      }
    });

  /** The jurisdiction a subcommand was given with `--jurisdiction` (which it requires). */
  const jurisdictionOption = (command: string, raw: Record<string, unknown>) => {
    if (!raw.jurisdiction) throw new UserError(`steward ${command}: --jurisdiction <id> is required`);
    return getJurisdiction(parseOptions(z.object({ jurisdiction: JurisdictionIdSchema }), raw).jurisdiction);
  };

  /**
   * A subcommand's options with those `qualify` itself takes (`--jurisdiction`, `--out`): the parser gives those to
   * `qualify` wherever they appear on the line.
   */
  const withQualifyOptions = (raw: Record<string, unknown>, names: readonly string[]) => {
    const parent = qualify.opts<Record<string, unknown>>();
    return { ...Object.fromEntries(names.filter((n) => parent[n] !== undefined).map((n) => [n, parent[n]])), ...raw };
  };

  qualify
    .command('verify')
    .description("check a stored report: QA's signature over its bytes, the approval, every evidence item's SHA-256")
    .argument('[report-id]', 'a report id (with --jurisdiction)')
    .option('--jurisdiction <id>', 'the jurisdiction whose evidence bucket holds the report')
    .option('--dir <dir>', 'a downloaded report folder instead (report.json, report.p7s, approval.json, evidence/)')
    .option('--out <dir>', 'with a report id: also download it into this folder')
    .option('--ca <file>', 'the Steward CA certificate (default: the PKI directory’s)')
    .action(async (reportId: string | undefined, raw: Record<string, unknown>) => {
      const options = parseOptions(VerifyOptionsSchema, withQualifyOptions(raw, ['jurisdiction', 'out']));
      if (options.jurisdiction && !reportId) throw new UserError('steward qualify verify: give the report id');
      const ctx = CommandContext.create(globals());
      try {
        const caFile = options.ca ?? path.join(ctx.config.pkiDir, 'ca.pem');
        if (!existsSync(caFile)) throw new UserError(`no CA certificate at ${caFile}: give --ca <file>`);
        const caPem = readFileSync(caFile, 'utf8');
        const files = options.dir
          ? await reportFilesFromDir(options.dir)
          : await reportFilesFromBucket(ctx, options.jurisdiction!, reportId!);
        if (options.out && !options.dir) {
          const j = getJurisdiction(options.jurisdiction!);
          const html = await getObjectOrUndefined(ctx.s3(j.id), j.buckets.evidence, reportKeys(reportId!).html);
          await writeReportDir(options.out, files, html, caPem);
        }
        const checked = await verifyReport(files, caPem);
        if (ctx.json) printJson({ reportId: checked.report?.reportId ?? reportId, ...checked, report: undefined });
        else {
          say(`${checked.verdict}: ${checked.report?.reportId ?? reportId ?? options.dir}`);
          if (checked.problems.length === 0) {
            say(`  signature: valid, by QA; every evidence item matches its SHA-256`);
            for (const cause of checked.report!.causes) say(`  - ${cause}`);
          }
          for (const p of checked.problems) say(`  FAILED: ${p}`);
        }
        if (checked.problems.length > 0) process.exitCode = EXIT.verificationFailed;
        else if (checked.verdict === 'NOT QUALIFIED') process.exitCode = EXIT.failure;
      } finally {
        await ctx.close();
      }
    });

  qualify
    .command('list')
    .description("qualification reports in a jurisdiction's evidence bucket, newest first")
    .option('--jurisdiction <id>', 'jurisdiction (required)')
    .action(async (raw: Record<string, unknown>) => {
      const j = jurisdictionOption('qualify list', withQualifyOptions(raw, ['jurisdiction']));
      const ctx = CommandContext.create(globals());
      try {
        const s3 = ctx.s3(j.id);
        const rows = [];
        for (const o of await listObjects(s3, j.buckets.evidence, REPORTS_PREFIX)) {
          if (!o.key.endsWith('/report.json')) continue;
          const report = ReportContentSchema.parse(
            JSON.parse((await getObjectOrUndefined(s3, j.buckets.evidence, o.key))!.toString('utf8')),
          );
          rows.push({
            reportId: report.reportId,
            verdict: report.verdict,
            completedAt: report.completedAt,
            runBy: report.runBy.printedName,
          });
        }
        rows.sort((a, b) => b.completedAt.localeCompare(a.completedAt));
        if (ctx.json) printJson(rows);
        else if (rows.length === 0) say(`no qualification reports in ${j.id}`);
        else for (const r of rows) say(`${r.reportId}  ${r.verdict.padEnd(13)}  ${r.completedAt}  run by ${r.runBy}`);
      } finally {
        await ctx.close();
      }
    });

  const baseline = program
    .command('baseline')
    .description('the configuration baseline: the installation as QA approved it (IQ compares with it)');
  baseline
    .command('record')
    .description('record the installation as the next baseline version and approve it (QA, e-signed)')
    .requiredOption('--jurisdiction <id>', 'jurisdiction')
    .requiredOption('--reason <text>', 'why a new baseline (first installation, approved change …)')
    .option('--request-id <id>', 'resume the request an interrupted command started')
    .action(async (raw: Record<string, unknown>) => {
      const options = parseOptions(BaselineOptionsSchema, raw);
      const ctx = CommandContext.create(globals());
      try {
        const requestId = requestIdOf(options.requestId);
        const handle = await ctx.startRequest<typeof baselineWorkflow>('baselineWorkflow', {
          workflowId: baselineWorkflowId(options.jurisdiction, requestId),
          requestId,
          kind: RequestKind.Baseline,
          action: 'baseline.record',
          jurisdiction: options.jurisdiction,
          params: { reason: options.reason },
          meaning: 'record the configuration baseline',
        });
        const draft = await awaitDraft(handle);
        if (draft.stage === 'awaiting-signature') {
          await signDraft(ctx, handle, options.jurisdiction, draft, 'approve configuration baseline');
        }
        const result = await handle.result();
        if (ctx.json) printResult(ctx, result, { ...draft, stage: result.signed ? 'signed' : 'unsigned' });
        else say(`baseline ${result.version} of ${options.jurisdiction} approved and in force (${result.sha256})`);
      } finally {
        await ctx.close();
      }
    });
  baseline
    .command('show')
    .description('the baseline in force: version, who approved it, and what it records')
    .option('--jurisdiction <id>', 'jurisdiction (required)')
    .action(async (raw: Record<string, unknown>) => {
      const j = jurisdictionOption('baseline show', raw);
      const ctx = CommandContext.create(globals());
      try {
        const caPem = readFileSync(path.join(ctx.config.pkiDir, 'ca.pem'), 'utf8');
        const current = await readCurrentBaseline(ctx.s3(j.id), j.buckets.evidence, caPem);
        if (!current) throw new UserError(`${j.id} has no approved baseline: steward baseline record`, EXIT.failure);
        if (ctx.json) printJson(current);
        else {
          const s = current.approval.eSignature;
          say(`baseline ${current.baseline.version} of ${j.id}, recorded ${current.baseline.recordedAt}`);
          say(`  approved by ${s.printedName} (${s.role}) at ${s.signedAt} UTC — meaning: ${s.meaning}`);
          say(`  SHA-256 ${current.sha256}; source ${current.baseline.source.commit ?? 'not a git checkout'}`);
          for (const item of current.baseline.items) say(`  ${item.check.padEnd(20)} ${item.label}: ${item.value}`);
        }
      } finally {
        await ctx.close();
      }
    });
}
