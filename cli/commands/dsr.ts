import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { downloadAccessPackage } from '../../lib/client/access-package';
import {
  RequestKind,
  subjectIndexWorkflowId,
  subjectRequestStatusQuery,
  subjectRequestWorkflowId,
} from '../../contracts';
import { getJurisdiction } from '../../jurisdictions';
import { checkRole, decisionRefused } from '../decisions';
import {
  decideSubjectRequest,
  findSubjectRequest,
  listSubjectRequests,
  subjectRequestStatus,
} from '../../lib/client/subject-requests';
import { EXIT, UserError } from '../../lib/runtime/errors';
import {
  DsrDecisionOptionsSchema,
  DsrExtendOptionsSchema,
  DsrFileOptionsSchema,
  DsrListOptionsSchema,
  DsrVerifyIdentityOptionsSchema,
} from '../../schemas/cli';
import {
  FILING_ACTIONS,
  OPEN_STATES,
  type DecisionKind,
  type DecisionParams,
  type SubjectRequestKind,
  type SubjectRequestStatus,
} from '../../schemas/subject-request';
import type { subjectRequestWorkflow, verifySubjectIndexWorkflow } from '../../workflows';
import { CommandContext, type GlobalOptions } from '../context';
import { parseOptions, requestIdOf } from '../options';
import { printJson, say } from '../output';

const FILING: Record<SubjectRequestKind, { command: string; what: string; kind: RequestKind }> = {
  access: {
    command: 'access',
    what: 'an access request (GDPR Art. 15, HIPAA 164.524)',
    kind: RequestKind.SubjectAccess,
  },
  erasure: { command: 'erase', what: 'an erasure request (GDPR Art. 17)', kind: RequestKind.SubjectErasure },
  restriction: {
    command: 'restrict',
    what: 'a restriction of processing (GDPR Art. 18)',
    kind: RequestKind.SubjectRestriction,
  },
};

/** What each decision's signature means (21 CFR 11.50), as the e-signature records it. */
const MEANING: Record<DecisionKind, string> = {
  'verify-identity': 'confirm the data subject’s identity was verified',
  approve: 'approve the request',
  reject: 'reject the request',
  extend: 'extend the request’s deadline',
  lift: 'lift the restriction',
  cancel: 'cancel the request',
  retry: 'retry the failed step',
};

function daysLeft(dueAt: Date | string | undefined, now = Date.now()): string {
  if (!dueAt) return '';
  const days = Math.floor((new Date(dueAt).getTime() - now) / 86_400_000);
  return days < 0 ? `OVERDUE by ${-days} d` : `${days} d left`;
}

function printStatus(status: SubjectRequestStatus): void {
  say(
    `Request ${status.requestId} — ${status.kind}, ${status.jurisdiction}${status.studyId ? `, study ${status.studyId}` : ''}`,
  );
  say(`  state:     ${status.state}${status.overdue ? ' (OVERDUE: escalated)' : ''}`);
  say(`  received:  ${status.receivedAt}`);
  const open = OPEN_STATES.includes(status.state);
  say(`  due:       ${status.dueAt}${open ? ` (${daysLeft(status.dueAt)})` : ''} — ${status.legalBasis}`);
  if (status.latestDueAt) say(`  latest due with every extension allowed: ${status.latestDueAt}`);
  for (const e of status.extensions) say(`  extended by ${e.by} at ${e.at}: ${e.reason}`);
  if (status.identity) {
    say(
      `  identity:  verified by ${status.identity.by.id} (${status.identity.method}, evidence ${status.identity.evidenceRef})`,
    );
  }
  if (status.linkedTo) say(`  linked to: ${status.linkedTo} (an open request of the same kind for the same subject)`);
  if (status.linked.length > 0) say(`  answers:   ${status.linked.join(', ')}`);
  if (status.failure)
    say(`  failed at: ${status.failure.step}: ${status.failure.message} (steward dsr retry ${status.requestId})`);
  for (const [k, v] of Object.entries(status.outcome)) say(`  ${k}: ${v}`);
}

function printSteps(status: SubjectRequestStatus): void {
  say('  steps:');
  for (const s of status.steps) {
    const who = s.by ? ` by ${s.by.id} (${s.by.role})` : '';
    const signed = s.eSignature ? ` [e-signed: "${s.eSignature.meaning}", ${s.eSignature.signedAt}]` : '';
    say(`    ${s.at}  ${s.step}${who}${signed}${s.reason ? ` — ${s.reason}` : ''}`);
  }
}

/** Refuses early, before the signature is asked for, when this identity's role may not act. */
export function registerDsrCommands(program: Command, globals: () => GlobalOptions): void {
  const dsr = program
    .command('dsr')
    .description('data subject requests: access, erasure and restriction, with deadlines (DPO; auditors read)');

  for (const kind of ['access', 'erasure', 'restriction'] as const) {
    const filing = FILING[kind];
    dsr
      .command(filing.command)
      .description(`file ${filing.what} for a data subject (dpo role)`)
      .requiredOption('--subject <id>', "the subject's identifier as the source systems know it (kept only as tokens)")
      .requiredOption('--jurisdiction <id>', 'the jurisdiction whose data the request covers')
      .requiredOption(
        '--received <date>',
        'when the request was received (YYYY-MM-DD or a UTC date-time): the deadline counts from it',
      )
      .requiredOption('--reason <text>', 'what the subject asked for and how (recorded in the audit trail)')
      .option('--study <id>', 'only this study (default: every study of the jurisdiction)')
      .option('--request-id <id>', 'resume the filing an interrupted run started (it prints its request id)')
      .action(async (raw: Record<string, unknown>) => {
        const options = parseOptions(DsrFileOptionsSchema, raw);
        getJurisdiction(options.jurisdiction);
        const ctx = CommandContext.create(globals());
        try {
          await checkRole(ctx, FILING_ACTIONS[kind]);
          const requestId = requestIdOf(options.requestId);
          const workflowId = subjectRequestWorkflowId(options.jurisdiction, requestId);
          await ctx.startRequest<typeof subjectRequestWorkflow>('subjectRequestWorkflow', {
            workflowId,
            requestId,
            kind: filing.kind,
            action: FILING_ACTIONS[kind],
            jurisdiction: options.jurisdiction,
            ...(options.study ? { studyId: options.study } : {}),
            params: {
              subjectId: options.subject,
              received: options.received,
              reason: options.reason,
              ...(options.study ? { studyId: options.study } : {}),
            },
            meaning: `file ${filing.what} on the data subject’s behalf`,
          });
          const status = await waitForState(ctx, workflowId);
          if (ctx.json) printJson(status);
          else {
            printStatus(status);
            if (status.state === 'received') {
              say(
                `Next: verify the subject's identity: steward dsr verify-identity ${requestId} --method … --evidence-ref … --reason …`,
              );
            }
            const url = ctx.uiUrl(workflowId);
            if (url) say(`  Web UI: ${url}`);
          }
        } finally {
          await ctx.close();
        }
      });
  }

  const decision = (name: DecisionKind, description: string, configure: (c: Command) => Command = (c) => c) =>
    configure(
      dsr
        .command(name)
        .description(`${description} (dpo role, e-signed)`)
        .argument('<request-id>', 'the request, as `steward dsr list` shows it')
        .requiredOption('--reason <text>', 'why (recorded with the e-signature)'),
    ).action(async (requestId: string, raw: Record<string, unknown>) => {
      const ctx = CommandContext.create(globals());
      try {
        const identity = await checkRole(ctx, `dsr.${name}`);
        const client = await ctx.temporal();
        const found = await findSubjectRequest(client, requestId);
        const params = decisionParams(name, requestId, raw);
        const status = await decideSubjectRequest(client, identity, {
          requestId,
          jurisdiction: found.jurisdiction,
          workflowId: found.workflowId,
          params,
          meaning: MEANING[name],
        }).catch(decisionRefused);
        if (ctx.json) printJson(status);
        else printStatus(status);
      } finally {
        await ctx.close();
      }
    });

  decision('verify-identity', "record that the subject's identity was verified, and how", (c) =>
    c
      .requiredOption(
        '--method <method>',
        'in-person, id-document, account-login, knowledge-based, authorized-representative or other',
      )
      .requiredOption(
        '--evidence-ref <ref>',
        'where the evidence is kept outside Steward (a case or ticket number; never the document)',
      ),
  );
  decision('approve', 'approve an erasure request, so it proceeds', (c) =>
    c.option(
      '--override <dataset=reason>',
      'erase this dataset although a duty to keep it would exempt it, for this reason (repeatable; never a legal hold)',
      (value: string, all: string[] = []) => [...all, value],
    ),
  );
  decision('reject', 'reject a request (e.g. identity not verified, manifestly unfounded)');
  decision('extend', 'extend the deadline, within the legal maximum', (c) =>
    c.requiredOption('--by <duration>', 'ISO 8601 duration, e.g. P1M or P30D'),
  );
  decision('lift', 'lift a restriction in force');
  decision('cancel', 'cancel a request (withdrawn by the subject)');
  decision('retry', 'run a failed step again, from where it stopped');

  for (const name of ['status', 'show'] as const) {
    dsr
      .command(name)
      .description(
        name === 'status'
          ? "a request's state and deadline (dpo, auditor)"
          : 'a request with every recorded step (dpo, auditor)',
      )
      .argument('<request-id>', 'the request')
      .action(async (requestId: string) => {
        const ctx = CommandContext.create(globals());
        try {
          await checkRole(ctx, 'dsr.read');
          const client = await ctx.temporal();
          const found = await findSubjectRequest(client, requestId);
          const status = await subjectRequestStatus(client, found.workflowId);
          if (ctx.json) printJson(status);
          else {
            printStatus(status);
            if (name === 'show') printSteps(status);
          }
        } finally {
          await ctx.close();
        }
      });
  }

  dsr
    .command('export')
    .description("download an access request's package and check it: manifest signature and every file's SHA-256 (dpo)")
    .argument('<request-id>', 'the access request')
    .requiredOption('--out <dir>', 'folder to write the package to (created; must be empty)')
    .option('--ca <file>', 'the Steward CA certificate (default: the PKI directory’s)')
    .action(async (requestId: string, raw: { out: string; ca?: string }) => {
      const ctx = CommandContext.create(globals());
      try {
        await checkRole(ctx, 'dsr.export');
        const found = await findSubjectRequest(await ctx.temporal(), requestId);
        const caFile = raw.ca ?? path.join(ctx.config.pkiDir, 'ca.pem');
        if (!existsSync(caFile)) throw new UserError(`no CA certificate at ${caFile}: give --ca <file>`);
        const result = await downloadAccessPackage(ctx.s3(found.jurisdiction), getJurisdiction(found.jurisdiction), {
          requestId,
          out: path.resolve(raw.out),
          caPem: await readFile(caFile, 'utf8'),
        });
        if (ctx.json) printJson(result);
        else {
          say(
            `Access package of request ${requestId}: ${result.files} files in ${result.out}, expires ${result.expiresAt}.`,
          );
          say('Manifest signature and every file checked.');
          say(
            `  openssl cms -verify -binary -inform DER -in ${path.join(result.out, 'manifest.json.p7s')} -content ${path.join(result.out, 'manifest.json')} -CAfile ${caFile} -purpose any`,
          );
        }
      } finally {
        await ctx.close();
      }
    });

  registerIndexCommands(dsr, globals);

  dsr
    .command('list')
    .description('subject requests, soonest due first (dpo, auditor)')
    .option('--jurisdiction <id>', 'only this jurisdiction')
    .option('--state <state>', 'only requests in this state (e.g. pending-approval)')
    .option('--overdue', 'only open requests past their deadline')
    .option('--due-within <duration>', 'only open requests due within this ISO 8601 duration or Nd (e.g. 7d)')
    .action(async (raw: Record<string, unknown>) => {
      const options = parseOptions(DsrListOptionsSchema, raw);
      if (options.jurisdiction) getJurisdiction(options.jurisdiction);
      const ctx = CommandContext.create(globals());
      try {
        await checkRole(ctx, 'dsr.read');
        const now = Date.now();
        const dueBefore = options.overdue
          ? new Date(now)
          : options.dueWithin !== undefined
            ? new Date(now + options.dueWithin * 86_400_000)
            : undefined;
        const rows = await listSubjectRequests(await ctx.temporal(), {
          ...(options.jurisdiction ? { jurisdiction: options.jurisdiction } : {}),
          ...(options.state ? { state: options.state } : {}),
          ...(dueBefore ? { dueBefore } : {}),
        });
        if (ctx.json) printJson(rows);
        else if (rows.length === 0) say('No subject requests match.');
        else {
          for (const r of rows) {
            const open = OPEN_STATES.includes(r.state as never);
            say(
              `${r.requestId}  ${r.jurisdiction}  ${r.kind.padEnd(11)}  ${String(r.state).padEnd(18)}  due ${r.dueAt?.toISOString().slice(0, 10) ?? '?'}${open ? `  ${daysLeft(r.dueAt, now)}` : ''}`,
            );
          }
        }
      } finally {
        await ctx.close();
      }
    });
}

function registerIndexCommands(dsr: Command, globals: () => GlobalOptions): void {
  const index = dsr
    .command('index')
    .description("the jurisdiction's subject index, which discovery finds a subject's data through");
  const operations = {
    verify: {
      workflow: 'verifySubjectIndexWorkflow',
      action: 'dsr.index-verify',
      description: 'compare the index with a full scan of every table (dpo, auditor; exit 7 on any difference)',
      meaning: 'verify the subject index against the stored tables',
    },
    rebuild: {
      workflow: 'rebuildSubjectIndexWorkflow',
      action: 'dsr.index-rebuild',
      description: 'delete the index and build it again from every table (dpo, ops)',
      meaning: 'rebuild the subject index',
    },
  } as const;
  for (const [name, op] of Object.entries(operations)) {
    index
      .command(name)
      .description(op.description)
      .requiredOption('--jurisdiction <id>', 'the jurisdiction')
      .option('--reason <text>', 'why (recorded in the audit trail)', `steward dsr index ${name}`)
      .option('--request-id <id>', 'resume the run an interrupted command started (it prints its request id)')
      .action(async (raw: { jurisdiction: string; reason: string; requestId?: string }) => {
        getJurisdiction(raw.jurisdiction);
        const ctx = CommandContext.create(globals());
        try {
          await checkRole(ctx, op.action);
          const requestId = requestIdOf(raw.requestId);
          if (!ctx.json) say(`Request ${requestId}: ${op.meaning} in ${raw.jurisdiction} (reads every table)…`);
          const handle = await ctx.startRequest<typeof verifySubjectIndexWorkflow>(op.workflow, {
            workflowId: subjectIndexWorkflowId(raw.jurisdiction, requestId),
            requestId,
            kind: RequestKind.SubjectIndex,
            action: op.action,
            jurisdiction: raw.jurisdiction,
            params: { jurisdiction: raw.jurisdiction, reason: raw.reason },
            meaning: op.meaning,
          });
          const result = await handle.result();
          if (ctx.json) printJson(result);
          else if (result.operation === 'rebuild') {
            say(`Subject index of ${raw.jurisdiction} rebuilt: ${result.datasets} datasets, ${result.tokens} tokens.`);
          } else if (result.problems.length === 0) {
            say(
              `Subject index of ${raw.jurisdiction} agrees with a full scan: ${result.objects} tables, ${result.tokens} postings.`,
            );
          } else {
            say(`Subject index of ${raw.jurisdiction}: ${result.problems.length} differences from a full scan:`);
            for (const p of result.problems) say(`  ${p}`);
            say(`Rebuild it: steward dsr index rebuild --jurisdiction ${raw.jurisdiction}`);
          }
          if (result.problems.length > 0) process.exitCode = EXIT.verificationFailed;
        } finally {
          await ctx.close();
        }
      });
  }
}

/** The parameters of a decision, from its command's options. */
function decisionParams(name: DecisionKind, requestId: string, raw: Record<string, unknown>): DecisionParams {
  switch (name) {
    case 'verify-identity': {
      const o = parseOptions(DsrVerifyIdentityOptionsSchema, raw);
      return { decision: name, requestId, method: o.method, evidenceRef: o.evidenceRef, reason: o.reason };
    }
    case 'extend': {
      const o = parseOptions(DsrExtendOptionsSchema, raw);
      return { decision: name, requestId, by: o.by, reason: o.reason };
    }
    case 'approve': {
      const { reason } = parseOptions(DsrDecisionOptionsSchema, raw);
      const overrides = ((raw.override as string[] | undefined) ?? []).map((value) => {
        const at = value.indexOf('=');
        if (at <= 0 || at === value.length - 1) {
          throw new UserError(`--override ${value}: expected <dataset-id>=<reason>`);
        }
        return { datasetId: value.slice(0, at).trim(), reason: value.slice(at + 1).trim() };
      });
      return { decision: name, requestId, reason, ...(overrides.length > 0 ? { overrides } : {}) };
    }
    default:
      return { decision: name, requestId, reason: parseOptions(DsrDecisionOptionsSchema, raw).reason };
  }
}

/** The request's status once its workflow has checked and recorded the filing (or its outcome, if it ended). */
async function waitForState(ctx: CommandContext, workflowId: string): Promise<SubjectRequestStatus> {
  const client = await ctx.temporal();
  const handle = client.workflow.getHandle<typeof subjectRequestWorkflow>(workflowId);
  const until = Date.now() + 120_000;
  for (;;) {
    if ((await handle.describe()).status.name !== 'RUNNING') return handle.result();
    const status = await handle.query(subjectRequestStatusQuery).catch(() => undefined);
    if (status?.steps.some((s) => s.step === 'received')) return status;
    if (Date.now() > until) {
      throw new UserError(`the request was filed, but its workflow has not recorded it yet: see steward dsr status`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
