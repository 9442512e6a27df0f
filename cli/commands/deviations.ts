import type { Command } from 'commander';
import { z } from 'zod';
import { deviationDecisionUpdate, driftCheckWorkflowId, progressQuery, RequestKind } from '../../contracts';
import { getJurisdiction } from '../../jurisdictions';
import { readDeviationRecords } from '../../lib/qualification/deviations';
import { EXIT, UserError } from '../../lib/runtime/errors';
import { RequestIdSchema } from '../../schemas/cli';
import { JurisdictionIdSchema } from '../../schemas/jurisdiction';
import type { DeviationDecisionParams, DeviationRecord } from '../../schemas/qualification';
import type { deviationWorkflow, driftCheckWorkflow } from '../../workflows';
import { CommandContext, type GlobalOptions } from '../context';
import { checkRole, decisionRefused } from '../decisions';
import { parseOptions, requestIdOf } from '../options';
import { note, printJson, say } from '../output';

const DriftOptionsSchema = z.object({ jurisdiction: JurisdictionIdSchema, requestId: RequestIdSchema.optional() });
const ListOptionsSchema = z.object({ jurisdiction: JurisdictionIdSchema, all: z.boolean().default(false) });
const InvestigateOptionsSchema = z.object({ notes: z.string().trim().min(3).max(4000) });
const CloseOptionsSchema = z.object({
  disposition: z.enum(['corrected', 'accepted', 'rebaselined'], {
    message: 'must be corrected (the installation was put back), accepted (kept, with the reason) or rebaselined',
  }),
  notes: z.string().trim().min(3).max(4000),
});

/** `deviation-<j>-<key>`: the jurisdiction is part of the id. */
function jurisdictionOfDeviation(id: string): string {
  const match = /^deviation-([a-z]{2})-[0-9a-f]{16}$/.exec(id);
  if (!match) throw new UserError(`${id} is not a deviation id (steward deviations list shows them)`);
  return getJurisdiction(match[1]!).id;
}

function printRecord(r: DeviationRecord): void {
  say(`${r.deviationId}  ${r.state.toUpperCase()}  risk ${r.finding.risk}  (${r.finding.requirements.join(', ')})`);
  say(`  ${r.finding.check}: ${r.finding.text}`);
  say(`  detected ${r.detectedAt} by ${r.detectedBy}, against baseline ${r.baseline ?? 'none'}`);
  if (r.investigation) {
    const e = r.investigation.eSignature;
    say(`  investigated by ${e.printedName} (${e.role}) at ${e.signedAt}: ${r.investigation.notes}`);
  }
  if (r.closure) {
    const e = r.closure.eSignature;
    say(`  closed ${r.closure.disposition} by ${e.printedName} (${e.role}) at ${e.signedAt}: ${r.closure.notes}`);
  }
}

export function registerDeviationCommands(program: Command, globals: () => GlobalOptions): void {
  program
    .command('drift')
    .description('configuration drift: the live installation compared with the approved baseline')
    .command('check')
    .description('compare now (the drift schedule does so hourly); each difference opens a deviation (qa or ops)')
    .requiredOption('--jurisdiction <id>', 'jurisdiction')
    .option('--request-id <id>', 'resume the check an interrupted command started')
    .action(async (raw: Record<string, unknown>) => {
      const options = parseOptions(DriftOptionsSchema, raw);
      const ctx = CommandContext.create(globals());
      try {
        await checkRole(ctx, 'drift.check');
        const requestId = requestIdOf(options.requestId);
        const handle = await ctx.startRequest<typeof driftCheckWorkflow>('driftCheckWorkflow', {
          workflowId: driftCheckWorkflowId(options.jurisdiction, requestId),
          requestId,
          kind: RequestKind.DriftCheck,
          action: 'drift.check',
          jurisdiction: options.jurisdiction,
          params: {},
        });
        const shown = setInterval(() => {
          handle
            .query(progressQuery)
            .then((p) => note(p.phase))
            .catch(() => undefined);
        }, 5000);
        const result = await handle.result().finally(() => clearInterval(shown));
        if (ctx.json) printJson(result);
        else {
          if (result.baseline === null) say(`${result.jurisdiction} has no approved baseline: steward baseline record`);
          else if (result.findings.length === 0)
            say(`no drift: ${result.jurisdiction} is as baseline ${result.baseline} records`);
          else {
            say(`${result.findings.length} difference(s) from baseline ${result.baseline} of ${result.jurisdiction}:`);
            for (const f of result.findings) say(`  [${f.risk}] ${f.check}: ${f.text}`);
            for (const id of result.opened) say(`  opened ${id}`);
            for (const id of result.alreadyOpen) say(`  already open: ${id}`);
          }
        }
        if (result.findings.length > 0) process.exitCode = 1;
      } finally {
        await ctx.close();
      }
    });

  const deviations = program
    .command('deviations')
    .description('deviations from the configuration baseline: open → investigated → closed (QA, e-signed)');
  deviations
    .command('list')
    .description('deviations not yet closed (with --all, every one), oldest first')
    .requiredOption('--jurisdiction <id>', 'jurisdiction')
    .option('--all', 'closed ones too')
    .action(async (raw: Record<string, unknown>) => {
      const options = parseOptions(ListOptionsSchema, raw);
      const j = getJurisdiction(options.jurisdiction);
      const ctx = CommandContext.create(globals());
      try {
        const records = (await readDeviationRecords(ctx.s3(j.id), j.buckets.catalog)).filter(
          (r) => options.all || r.state !== 'closed',
        );
        if (ctx.json) printJson(records);
        else if (records.length === 0) say(`no ${options.all ? '' : 'open '}deviations in ${j.id}`);
        else
          for (const r of records) {
            say(
              `${r.deviationId}  ${r.state.padEnd(12)} ${r.finding.risk.padEnd(6)} ${r.detectedAt}  ${r.finding.check}: ${r.finding.text}`,
            );
          }
      } finally {
        await ctx.close();
      }
    });
  deviations
    .command('show')
    .description('one deviation: its finding and each step with its e-signature')
    .argument('<deviation-id>', 'as `steward deviations list` shows it')
    .action(async (id: string) => {
      const j = getJurisdiction(jurisdictionOfDeviation(id));
      const ctx = CommandContext.create(globals());
      try {
        const record = (await readDeviationRecords(ctx.s3(j.id), j.buckets.catalog)).find((r) => r.deviationId === id);
        if (!record) throw new UserError(`no deviation ${id} in ${j.id}`, EXIT.notRunning);
        if (ctx.json) printJson(record);
        else printRecord(record);
      } finally {
        await ctx.close();
      }
    });

  const decide = async (id: string, params: DeviationDecisionParams, meaning: string) => {
    const jurisdiction = jurisdictionOfDeviation(id);
    const ctx = CommandContext.create(globals());
    try {
      await checkRole(ctx, 'deviation.decide');
      const input = await ctx.sign({ action: 'deviation.decide', jurisdiction, params, meaning });
      const handle = (await ctx.temporal()).workflow.getHandle<typeof deviationWorkflow>(id);
      const record = await handle
        .executeUpdate(deviationDecisionUpdate, { args: [{ request: input.request }] })
        .catch(decisionRefused);
      if (ctx.json) printJson(record);
      else printRecord(record);
    } finally {
      await ctx.close();
    }
  };
  deviations
    .command('investigate')
    .description('record the investigation of an open deviation (qa, e-signed)')
    .argument('<deviation-id>', 'as `steward deviations list` shows it')
    .requiredOption('--notes <text>', 'what was found: the cause, and what was checked')
    .action(async (id: string, raw: Record<string, unknown>) => {
      const { notes } = parseOptions(InvestigateOptionsSchema, raw);
      await decide(id, { step: 'investigate', notes }, 'investigate deviation');
    });
  deviations
    .command('close')
    .description('close an investigated deviation with its disposition (qa, e-signed)')
    .argument('<deviation-id>', 'as `steward deviations list` shows it')
    .requiredOption('--disposition <d>', 'corrected | accepted | rebaselined')
    .requiredOption('--notes <text>', 'why this disposition')
    .action(async (id: string, raw: Record<string, unknown>) => {
      const { disposition, notes } = parseOptions(CloseOptionsSchema, raw);
      await decide(id, { step: 'close', disposition, notes }, `close deviation: ${disposition}`);
    });
}
