import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { WorkflowHandle } from '@temporalio/client';
import type { Command } from 'commander';
import { z } from 'zod';
import {
  changeDecisionUpdate,
  changeStatusQuery,
  changeWorkflowId,
  qualificationStatusQuery,
  RequestKind,
} from '../../contracts';
import { getJurisdiction } from '../../jurisdictions';
import { controlledKind, readChangeRecords } from '../../lib/qualification/change';
import { EXIT, UserError } from '../../lib/runtime/errors';
import { RequestIdSchema } from '../../schemas/cli';
import { JurisdictionIdSchema } from '../../schemas/jurisdiction';
import type { ChangeDecisionParams, ChangeRecord } from '../../schemas/qualification';
import type { changeWorkflow } from '../../workflows';
import { CommandContext, type GlobalOptions } from '../context';
import { checkRole, decisionRefused } from '../decisions';
import { parseOptions, requestIdOf } from '../options';
import { note, printJson, say } from '../output';
import { awaitDraft, signDraft } from './qualify';

const MAX_BYTES = 256 * 1024;
/** How long `change sign` waits for restarted workers to take up the approved rules. */
const RESTART_WAIT_MS = 5 * 60_000;

const ProposeOptionsSchema = z
  .object({
    jurisdiction: JurisdictionIdSchema,
    file: z.string().refine((f) => controlledKind(f) !== null, {
      message:
        'must be a controlled file: jurisdictions/<id>.json, pipelines/<name>/… or qualification/requirements.yaml',
    }),
    proposed: z.string().optional(),
    remove: z.boolean().default(false),
    reason: z.string().trim().min(3).max(2000),
    requestId: RequestIdSchema.optional(),
  })
  .refine((o) => !!o.proposed !== o.remove, { message: 'give --proposed <file> (its new content) or --remove' });
const DecisionOptionsSchema = z.object({ notes: z.string().trim().min(3).max(4000) });
const ListOptionsSchema = z.object({ jurisdiction: JurisdictionIdSchema, all: z.boolean().default(false) });

/** `change-<j>-<request id>`: the jurisdiction is part of the id. */
function jurisdictionOfChange(id: string): string {
  const match = /^change-([a-z]{2,8})-[A-Za-z0-9-]+$/.exec(id);
  if (!match) throw new UserError(`${id} is not a change id (steward change list shows them)`);
  return getJurisdiction(match[1]!).id;
}

const DONE: ReadonlySet<ChangeRecord['state']> = new Set(['refused', 'rejected', 'applied', 'expired']);

function printRecord(r: ChangeRecord): void {
  const i = r.impact;
  say(`${r.changeId}  ${r.state.toUpperCase()}  ${r.file} (${i.kind})`);
  say(`  proposed by ${r.proposedBy.printedName} (${r.proposedBy.role}) at ${r.proposedBy.signedAt}: ${r.reason}`);
  say(`  SHA-256 ${i.before ?? '(no file)'} → ${i.after ?? '(removed)'}`);
  if (i.changedFields.length > 0) say(`  changes: ${i.changedFields.join(', ')}`);
  say('  dry run:');
  for (const c of i.dryRun) say(`    ${c.ok ? 'ok    ' : 'FAILED'} ${c.check}: ${c.detail}`);
  if (i.kind === 'jurisdiction') {
    if (i.retention.length === 0) say('  retention: no dataset’s retain-until moves');
    else say(`  retention: ${i.retention.length} dataset(s) move:`);
    for (const m of i.retention) {
      const by = m.days === null ? '' : ` (${m.days >= 0 ? '+' : ''}${m.days} days)`;
      say(`    ${m.datasetId} (${m.rule}): ${m.from ?? 'open'} → ${m.to ?? 'open'}${by}`);
    }
  }
  for (const p of i.pipelines) {
    say(
      `  pipeline ${p.pipeline}: ${p.outputs.length} output dataset(s)${p.outputs.length ? `: ${p.outputs.join(', ')}` : ''}`,
    );
  }
  say(`  re-test: ${i.retest.join(', ') || 'none'}`);
  if (i.restartNeeded) say('  the workers load it when they restart; the new baseline is recorded once they have');
  if (r.decision) {
    const e = r.decision.eSignature;
    say(
      `  ${r.decision.decision === 'approve' ? 'approved' : 'rejected'} by ${e.printedName} (${e.role}) at ${e.signedAt}: ${r.decision.notes}`,
    );
  }
  if (r.appliedAt) say(`  applied at ${r.appliedAt}`);
  if (r.baseline !== null) say(`  baseline ${r.baseline} recorded`);
  for (const p of r.problems) say(`  - ${p}`);
}

/** The change's record: from its workflow while it runs, else from the catalog bucket. */
async function readChange(ctx: CommandContext, id: string): Promise<ChangeRecord> {
  const j = getJurisdiction(jurisdictionOfChange(id));
  const handle = (await ctx.temporal()).workflow.getHandle<typeof changeWorkflow>(id);
  const live = await handle.query(changeStatusQuery).catch(() => undefined);
  if (live) return live;
  const stored = (await readChangeRecords(ctx.s3(j.id), j.buckets.catalog)).find((r) => r.changeId === id);
  if (!stored) throw new UserError(`no change ${id} in ${j.id}`, EXIT.notRunning);
  return stored;
}

/** Waits until the proposal's record exists (its impact computed), or the workflow ended, whose error then surfaces. */
async function awaitRecord(handle: WorkflowHandle<typeof changeWorkflow>): Promise<ChangeRecord> {
  for (;;) {
    const record = await handle.query(changeStatusQuery).catch(() => undefined);
    if (record) return record;
    const description = await handle.describe();
    if (description.status.name !== 'RUNNING') return handle.result();
    await new Promise((r) => setTimeout(r, 300));
  }
}

/**
 * After an approval: signs the baseline the applied change makes once the workflow holds it; where the workers must
 * restart first, says so and leaves the signature for `steward change sign`.
 */
async function signBaseline(
  ctx: CommandContext,
  handle: WorkflowHandle<typeof changeWorkflow>,
  jurisdiction: string,
  restartWaitMs = 0,
): Promise<ChangeRecord> {
  const until = Date.now() + restartWaitMs;
  let told = false;
  for (;;) {
    const record = await handle.query(changeStatusQuery).catch(() => undefined);
    const description = await handle.describe();
    if (description.status.name !== 'RUNNING') return handle.result();
    if (record?.state === 'awaiting-restart') {
      if (Date.now() >= until) return record;
      if (!told) note(`waiting for the ${jurisdiction} workers to run the approved rules (restart them if not done)`);
      told = true;
    }
    if (record?.state === 'awaiting-baseline') {
      const status = await handle.query(qualificationStatusQuery).catch(() => undefined);
      if (status && status.stage !== 'running') {
        const draft = await awaitDraft(handle);
        if (draft.stage === 'awaiting-signature') {
          await signDraft(ctx, handle, jurisdiction, draft, 'approve configuration baseline');
        }
        return handle.result();
      }
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

function sayOutcome(record: ChangeRecord): void {
  if (record.state === 'awaiting-restart') {
    say(
      `${record.changeId}: ${record.file} applied; restart the ${record.jurisdiction} workers to load it (steward down, then steward up), then sign the new baseline: steward change sign ${record.changeId}`,
    );
  } else if (record.state === 'applied') {
    say(
      `${record.changeId}: ${record.file} applied; baseline ${record.baseline} of ${record.jurisdiction} approved and in force`,
    );
  } else say(`${record.changeId}: ${record.state}`);
}

export function registerChangeCommands(program: Command, globals: () => GlobalOptions): void {
  const change = program
    .command('change')
    .description(
      'change control for controlled files (jurisdiction rules, pipelines, requirements): propose, impact, QA approval, apply, new baseline',
    );
  change
    .command('propose')
    .description('propose a change: computes its impact and dry run, then waits for QA (another person) to decide')
    .requiredOption('--jurisdiction <id>', 'the jurisdiction whose installation it changes')
    .requiredOption('--file <path>', 'the controlled file, as a path in the installation (jurisdictions/eu.json …)')
    .option('--proposed <file>', 'a file holding its proposed new content')
    .option('--remove', 'remove the file instead (a pipeline file no longer used)')
    .requiredOption('--reason <text>', 'why the change')
    .option('--request-id <id>', 'resume the request an interrupted command started')
    .addHelpText('after', '\nExit codes: 0 proposed (awaiting QA), 1 refused by its dry run.')
    .action(async (raw: Record<string, unknown>) => {
      const options = parseOptions(ProposeOptionsSchema, raw);
      const ctx = CommandContext.create(globals());
      try {
        await checkRole(ctx, 'change.propose');
        let content: Buffer | null = null;
        if (options.proposed) {
          content = await readFile(options.proposed).catch((error: NodeJS.ErrnoException) => {
            throw new UserError(`${options.proposed}: cannot read the proposed content (${error.code})`);
          });
          if (content.length > MAX_BYTES) throw new UserError(`${options.proposed}: larger than ${MAX_BYTES} bytes`);
        }
        const requestId = requestIdOf(options.requestId);
        const handle = await ctx.startRequest<typeof changeWorkflow>('changeWorkflow', {
          workflowId: changeWorkflowId(options.jurisdiction, requestId),
          requestId,
          kind: RequestKind.Change,
          action: 'change.propose',
          jurisdiction: options.jurisdiction,
          params: {
            file: options.file,
            content: content ? content.toString('base64') : null,
            sha256: content ? createHash('sha256').update(content).digest('hex') : null,
            reason: options.reason,
          },
          meaning: `propose a change to ${options.file}`,
        });
        note(`change ${handle.workflowId}`);
        const record = await awaitRecord(handle);
        if (ctx.json) printJson(record);
        else {
          printRecord(record);
          if (record.state === 'awaiting-approval') {
            say(`QA (another person) decides: steward change approve|reject ${record.changeId} --notes …`);
          }
        }
        if (record.state === 'refused') process.exitCode = EXIT.failure;
      } finally {
        await ctx.close();
      }
    });
  change
    .command('show')
    .description('one change: its impact, dry run, decision and state')
    .argument('<change-id>', 'as `steward change propose` or `change list` shows it')
    .action(async (id: string) => {
      const ctx = CommandContext.create(globals());
      try {
        const record = await readChange(ctx, id);
        if (ctx.json) printJson(record);
        else printRecord(record);
      } finally {
        await ctx.close();
      }
    });
  change
    .command('list')
    .description('changes not yet done (with --all, every one), oldest first')
    .requiredOption('--jurisdiction <id>', 'jurisdiction')
    .option('--all', 'done ones too')
    .action(async (raw: Record<string, unknown>) => {
      const options = parseOptions(ListOptionsSchema, raw);
      const j = getJurisdiction(options.jurisdiction);
      const ctx = CommandContext.create(globals());
      try {
        const records = (await readChangeRecords(ctx.s3(j.id), j.buckets.catalog)).filter(
          (r) => options.all || !DONE.has(r.state),
        );
        if (ctx.json) printJson(records);
        else if (records.length === 0) say(`no ${options.all ? '' : 'open '}changes in ${j.id}`);
        else
          for (const r of records) {
            say(
              `${r.changeId}  ${r.state.padEnd(17)} ${r.proposedAt}  ${r.file}  by ${r.proposedBy.printedName}: ${r.reason}`,
            );
          }
      } finally {
        await ctx.close();
      }
    });

  const decide = async (id: string, decision: ChangeDecisionParams['decision'], notes: string) => {
    const jurisdiction = jurisdictionOfChange(id);
    const ctx = CommandContext.create(globals());
    try {
      await checkRole(ctx, 'change.decide');
      const handle = (await ctx.temporal()).workflow.getHandle<typeof changeWorkflow>(id);
      const before = await readChange(ctx, id);
      if (before.state !== 'awaiting-approval') {
        throw new UserError(`refused: ${id} is ${before.state}: it was decided already`, EXIT.usage);
      }
      const params: ChangeDecisionParams = { decision, sha256: before.impact.after, notes };
      const meaning = decision === 'approve' ? `approve change to ${before.file}` : `reject change to ${before.file}`;
      const input = await ctx.sign({ action: 'change.decide', jurisdiction, params, meaning });
      const record = await handle
        .executeUpdate(changeDecisionUpdate, { args: [{ request: input.request }] })
        .catch(decisionRefused);
      const outcome = decision === 'approve' ? await signBaseline(ctx, handle, jurisdiction) : record;
      if (ctx.json) printJson(outcome);
      else sayOutcome(outcome);
    } finally {
      await ctx.close();
    }
  };
  change
    .command('approve')
    .description(
      'approve a proposed change (qa, another person than the proposer, e-signed); it is applied and re-baselined',
    )
    .argument('<change-id>', 'as `steward change list` shows it')
    .requiredOption('--notes <text>', 'what was reviewed: the impact, the dry run, the re-tests')
    .action(async (id: string, raw: Record<string, unknown>) => {
      await decide(id, 'approve', parseOptions(DecisionOptionsSchema, raw).notes);
    });
  change
    .command('reject')
    .description('reject a proposed change (qa, e-signed): nothing is applied')
    .argument('<change-id>', 'as `steward change list` shows it')
    .requiredOption('--notes <text>', 'why')
    .action(async (id: string, raw: Record<string, unknown>) => {
      await decide(id, 'reject', parseOptions(DecisionOptionsSchema, raw).notes);
    });
  change
    .command('sign')
    .description('sign the baseline an applied change makes, once the workers run it (qa, e-signed)')
    .argument('<change-id>', 'as `steward change list` shows it')
    .action(async (id: string) => {
      const jurisdiction = jurisdictionOfChange(id);
      const ctx = CommandContext.create(globals());
      try {
        await checkRole(ctx, 'qualify.sign');
        const handle = (await ctx.temporal()).workflow.getHandle<typeof changeWorkflow>(id);
        const outcome = await signBaseline(ctx, handle, jurisdiction, RESTART_WAIT_MS);
        if (ctx.json) printJson(outcome);
        else sayOutcome(outcome);
        if (outcome.state === 'awaiting-restart') process.exitCode = EXIT.failure;
      } finally {
        await ctx.close();
      }
    });
}
