import type { Command } from 'commander';
import type { WorkflowHandle } from '@temporalio/client';
import {
  jurisdictionOfDatasetId,
  legalHoldWorkflowId,
  RequestKind,
  retentionSweepProgressQuery,
  retentionSweepWorkflowId,
  scheduleChangeWorkflowId,
  trialEndWorkflowId,
} from '../../contracts';
import { getJurisdiction } from '../../jurisdictions';
import { describeRetentionSchedule } from '../../lib/retention/schedule';
import { EXIT, UserError } from '../../lib/runtime/errors';
import {
  HoldOptionsSchema,
  ScheduleNoteOptionsSchema,
  ScheduleOptionsSchema,
  ScheduleSetOptionsSchema,
  SweepOptionsSchema,
  TrialEndOptionsSchema,
} from '../../schemas/cli';
import type { HoldResult, ScheduleChange, ScheduleState, SweepReport } from '../../schemas/retention';
import type {
  changeRetentionScheduleWorkflow,
  endTrialWorkflow,
  releaseLegalHoldWorkflow,
  retentionSweepWorkflow,
  setLegalHoldWorkflow,
} from '../../workflows';
import { CommandContext, type GlobalOptions } from '../context';
import { parseOptions, requestIdOf } from '../options';
import { awaitWithProgress, note, printJson, say } from '../output';

const REQUEST_ID_HELP = 'resume the request an interrupted run started (it prints its request id)';

function holdScope(options: {
  dataset?: string | undefined;
  study?: string | undefined;
  jurisdiction?: string | undefined;
}) {
  if (options.dataset) {
    const jurisdiction = jurisdictionOfDatasetId(options.dataset);
    if (!jurisdiction) throw new UserError(`--dataset: "${options.dataset}" is not a dataset id`);
    if (options.jurisdiction && options.jurisdiction !== jurisdiction) {
      throw new UserError(
        `--jurisdiction ${options.jurisdiction} does not match dataset ${options.dataset} (${jurisdiction})`,
      );
    }
    return {
      jurisdiction: getJurisdiction(jurisdiction).id,
      scope: { datasetId: options.dataset },
      label: `dataset ${options.dataset}`,
    };
  }
  return {
    jurisdiction: getJurisdiction(options.jurisdiction!).id,
    scope: { studyId: options.study! },
    label: `study ${options.study}`,
  };
}

function printHold(result: HoldResult): void {
  const on = 'datasetId' in result.scope ? `dataset ${result.scope.datasetId}` : `study ${result.scope.studyId}`;
  if (result.action === 'set') {
    say(
      `Legal hold ${result.holdId} set on ${on}: ${result.datasets.length} dataset(s), S3 legal hold on ${result.versions} object version(s)`,
    );
  } else {
    say(`Legal hold ${result.holdId} released on ${on}: S3 legal hold off on ${result.versions} object version(s)`);
    if (result.stillHeld.length > 0) {
      say(`  still held by another hold: ${result.stillHeld.join(', ')}`);
    }
  }
}

function printSchedule(s: ScheduleState): void {
  say(`Schedule ${s.scheduleId} (${s.jurisdiction}): ${s.paused ? 'PAUSED' : 'active'}`);
  say(`  runs: ${s.cron.length > 0 ? s.cron.map((c) => `"${c}"`).join(', ') : '(no calendar)'} ${s.timezone}`);
  if (s.note) say(`  note: ${s.note}`);
  if (s.nextRuns.length > 0) say(`  next: ${s.nextRuns.slice(0, 3).join(', ')}`);
  for (const r of s.recentRuns) say(`  ran:  ${r.startedAt}  ${r.workflowId}`);
}

function printSweep(report: SweepReport): void {
  const t = report.totals;
  say(
    `${report.dryRun ? 'Dry run of sweep' : 'Sweep'} ${report.sweepId} (${report.jurisdiction}) as of ${report.asOf}${report.scheduleId ? `, scheduled by ${report.scheduleId}` : ''}`,
  );
  say(
    `  datasets: ${t.datasetsScanned} scanned, ${report.dryRun ? `${t.datasetsExpired} would be deleted` : `${t.datasetsDeleted} deleted`}, ${t.datasetsHeld} held, ${t.datasetsKept} kept`,
  );
  say(
    `  raw uploads (landing, quarantine): ${t.packagesScanned} scanned, ${report.dryRun ? `${t.packagesExpired} would be deleted` : `${t.packagesDeleted} deleted`}, ${t.packagesHeld} held`,
  );
  say(
    `  access packages (exports): ${report.dryRun ? `${t.exportsExpired} expired, would be deleted` : `${t.exportsDeleted} expired and deleted`}`,
  );
  if (!report.dryRun) {
    say(
      `  object versions deleted: ${t.versionsDeleted} (${t.bytesDeleted} bytes); certificates issued: ${t.certificates}`,
    );
  }
  if (t.failed > 0) say(`  FAILED: ${t.failed} (storage refused; kept, and tried again by the next sweep)`);
  for (const item of report.items) {
    const what = `${item.kind} ${item.id}`;
    const until = item.until ? ` until ${item.until.slice(0, 10)}` : '';
    const cert = item.certificateId ? ` — certificate ${item.certificateId}` : '';
    say(`  ${item.outcome.padEnd(12)} ${what}  rule ${item.rule}${until}${cert}`);
    say(`               ${item.reason}`);
  }
  if (report.itemsOmitted > 0) say(`  … and ${report.itemsOmitted} more (the audit trail lists every one)`);
}

/** Shows a sweep's progress on stderr while waiting for its outcome. */
function followSweep(handle: WorkflowHandle<typeof retentionSweepWorkflow>): Promise<SweepReport> {
  return awaitWithProgress(handle, async () => {
    const p = await handle.query(retentionSweepProgressQuery);
    const t = p.totals;
    return `  ${p.phase}: ${t.datasetsScanned} datasets scanned, ${p.dryRun ? t.datasetsExpired : t.datasetsDeleted} ${p.dryRun ? 'expired' : 'deleted'}, ${t.datasetsHeld} held; ${t.packagesScanned} raw uploads scanned, ${p.dryRun ? t.packagesExpired : t.packagesDeleted} ${p.dryRun ? 'expired' : 'deleted'}`;
  });
}

export function registerRetentionCommands(program: Command, globals: () => GlobalOptions): void {
  const hold = program
    .command('hold')
    .description('legal holds (steward or dpo, e-signed): held data is never deleted by a sweep or an erasure');
  for (const action of ['set', 'release'] as const) {
    const command = hold.command(action);
    if (action === 'release') command.option('--hold <id>', 'which hold, when more than one is in force');
    command
      .description(
        action === 'set'
          ? 'put a dataset, or a whole study (its datasets now and later, and its raw uploads), under legal hold'
          : 'release a legal hold; S3 legal hold goes off where no other hold remains',
      )
      .option('--dataset <id>', 'the dataset')
      .option('--study <id>', 'the study (with --jurisdiction)')
      .option('--jurisdiction <id>', 'jurisdiction of the study')
      .requiredOption('--reason <text>', 'why (recorded with the hold and in the audit trail)')
      .option('--request-id <id>', REQUEST_ID_HELP)
      .action(async (raw: Record<string, unknown>) => {
        const options = parseOptions(HoldOptionsSchema, raw);
        const { jurisdiction, scope, label } = holdScope(options);
        const ctx = CommandContext.create(globals());
        try {
          const requestId = requestIdOf(options.requestId);
          const common = {
            workflowId: legalHoldWorkflowId(jurisdiction, requestId),
            requestId,
            kind: RequestKind.LegalHold,
            jurisdiction,
            ...('studyId' in scope ? { studyId: scope.studyId } : { datasetId: scope.datasetId }),
          };
          const result =
            action === 'set'
              ? await (
                  await ctx.startRequest<typeof setLegalHoldWorkflow>('setLegalHoldWorkflow', {
                    ...common,
                    action: 'hold.set',
                    params: { jurisdiction, scope, reason: options.reason },
                    meaning: `place a legal hold on ${label}`,
                  })
                ).result()
              : await (
                  await ctx.startRequest<typeof releaseLegalHoldWorkflow>('releaseLegalHoldWorkflow', {
                    ...common,
                    action: 'hold.release',
                    params: {
                      jurisdiction,
                      scope,
                      reason: options.reason,
                      ...(options.hold ? { holdId: options.hold } : {}),
                    },
                    meaning: `release ${options.hold ?? 'the legal hold'} on ${label}`,
                  })
                ).result();
          if (ctx.json) printJson(result);
          else printHold(result);
        } finally {
          await ctx.close();
        }
      });
  }

  const trial = program
    .command('trial')
    .description("a study's trial: the events clinical-trial retention counts from");
  trial
    .command('end')
    .description("record the end of a study's trial (steward, e-signed); recomputes retain-until of its datasets")
    .requiredOption('--jurisdiction <id>', 'jurisdiction')
    .requiredOption('--study <id>', 'study id')
    .requiredOption('--date <yyyy-mm-dd>', 'the date the trial ended (not in the future)')
    .option('--request-id <id>', REQUEST_ID_HELP)
    .action(async (raw: Record<string, unknown>) => {
      const options = parseOptions(TrialEndOptionsSchema, raw);
      const jurisdiction = getJurisdiction(options.jurisdiction).id;
      const ctx = CommandContext.create(globals());
      try {
        const requestId = requestIdOf(options.requestId);
        const handle = await ctx.startRequest<typeof endTrialWorkflow>('endTrialWorkflow', {
          workflowId: trialEndWorkflowId(jurisdiction, options.study, requestId),
          requestId,
          kind: RequestKind.TrialEnd,
          action: 'trial.end',
          jurisdiction,
          studyId: options.study,
          params: { jurisdiction, studyId: options.study, date: options.date },
          meaning: `record the end of the trial of study ${options.study} on ${options.date}`,
        });
        const result = await handle.result();
        if (ctx.json) printJson(result);
        else {
          say(`Trial of study ${result.studyId} (${result.jurisdiction}) ended on ${result.date}`);
          if (result.datasets.length === 0)
            say('  no dataset of the study counts its retention from the end of the trial');
          for (const d of result.datasets) {
            say(
              `  ${d.datasetId}  ${d.rule}  retain until ${d.until?.slice(0, 10) ?? 'open'}  Object Lock ${d.objectLock}${d.lockedUntil ? ` until ${d.lockedUntil.slice(0, 10)}` : ''}`,
            );
          }
        }
      } finally {
        await ctx.close();
      }
    });

  const retention = program
    .command('retention')
    .description('retention sweeps: delete what has expired, keep what is held, certify every deletion');
  retention
    .command('sweep')
    .description('run a sweep now (steward or dpo, e-signed; a dry run: also ops and auditor)')
    .requiredOption('--jurisdiction <id>', 'jurisdiction')
    .option('--as-of <date>', 'decide as of this date or date-time (later than now only with --dry-run)')
    .option('--dry-run', 'list what would be deleted and what is held, deleting nothing')
    .option('--request-id <id>', REQUEST_ID_HELP)
    .action(async (raw: Record<string, unknown>) => {
      const options = parseOptions(SweepOptionsSchema, raw);
      const jurisdiction = getJurisdiction(options.jurisdiction).id;
      const ctx = CommandContext.create(globals());
      try {
        const requestId = requestIdOf(options.requestId);
        const handle = await ctx.startRequest<typeof retentionSweepWorkflow>('retentionSweepWorkflow', {
          workflowId: retentionSweepWorkflowId(jurisdiction, requestId),
          requestId,
          kind: RequestKind.RetentionSweep,
          action: options.dryRun ? 'retention.preview' : 'retention.sweep',
          jurisdiction,
          params: { jurisdiction, dryRun: options.dryRun, ...(options.asOf ? { asOf: options.asOf } : {}) },
          meaning: options.dryRun
            ? `preview the retention sweep of ${jurisdiction}`
            : `approve deletion of ${jurisdiction} data whose retention has ended`,
        });
        const url = ctx.uiUrl(handle.workflowId);
        if (url) note(`watch it in the Temporal UI: ${url}`);
        const report = await followSweep(handle);
        if (ctx.json) printJson(report);
        else printSweep(report);
        if (report.totals.failed > 0) process.exitCode = EXIT.failure;
      } finally {
        await ctx.close();
      }
    });

  const schedule = retention
    .command('schedule')
    .description("a jurisdiction's sweep schedule (a Temporal Schedule that `steward up` creates)");
  schedule
    .command('show')
    .description('show when sweeps run, whether paused, and the latest runs')
    .requiredOption('--jurisdiction <id>', 'jurisdiction')
    .action(async (raw: Record<string, unknown>) => {
      const options = parseOptions(ScheduleOptionsSchema, raw);
      const jurisdiction = getJurisdiction(options.jurisdiction).id;
      const ctx = CommandContext.create(globals());
      try {
        const state = await describeRetentionSchedule(await ctx.temporal(), jurisdiction);
        if (ctx.json) printJson(state);
        else printSchedule(state);
      } catch (error) {
        if ((error as Error).name === 'ScheduleNotFoundError') {
          throw new UserError(`no sweep schedule for ${jurisdiction} yet: \`steward up\` creates it`, EXIT.notRunning);
        }
        throw error;
      } finally {
        await ctx.close();
      }
    });
  const change = (
    name: string,
    description: string,
    build: (raw: Record<string, unknown>) => { jurisdiction: string; change: ScheduleChange },
  ) =>
    schedule
      .command(name)
      .description(`${description} (ops or steward, signed; audited)`)
      .requiredOption('--jurisdiction <id>', 'jurisdiction')
      .option('--request-id <id>', REQUEST_ID_HELP)
      .action(async (raw: Record<string, unknown>) => {
        const { jurisdiction, change: wanted } = build(raw);
        const ctx = CommandContext.create(globals());
        try {
          const requestId = requestIdOf(raw.requestId as string | undefined);
          const handle = await ctx.startRequest<typeof changeRetentionScheduleWorkflow>(
            'changeRetentionScheduleWorkflow',
            {
              workflowId: scheduleChangeWorkflowId(jurisdiction, requestId),
              requestId,
              kind: RequestKind.ScheduleChange,
              action: 'retention.schedule',
              jurisdiction,
              params: { jurisdiction, change: wanted },
              meaning: `${wanted.kind} the retention sweep schedule of ${jurisdiction}`,
            },
          );
          const state = await handle.result();
          if (ctx.json) printJson(state);
          else {
            if (wanted.kind === 'trigger') say(`Started a sweep of ${jurisdiction} now (see "ran:" below)`);
            printSchedule(state);
          }
        } finally {
          await ctx.close();
        }
      });
  change('set', 'set when sweeps run', (raw) => {
    const o = parseOptions(ScheduleSetOptionsSchema, raw);
    return { jurisdiction: getJurisdiction(o.jurisdiction).id, change: { kind: 'set', cron: o.cron } };
  }).requiredOption('--cron <expr>', 'five cron fields, UTC, e.g. "0 2 * * *" (daily at 02:00)');
  change('pause', 'pause scheduled sweeps', (raw) => {
    const o = parseOptions(ScheduleNoteOptionsSchema, raw);
    return {
      jurisdiction: getJurisdiction(o.jurisdiction).id,
      change: { kind: 'pause', ...(o.note ? { note: o.note } : {}) },
    };
  }).option('--note <text>', 'why');
  change('resume', 'resume scheduled sweeps', (raw) => {
    const o = parseOptions(ScheduleNoteOptionsSchema, raw);
    return {
      jurisdiction: getJurisdiction(o.jurisdiction).id,
      change: { kind: 'resume', ...(o.note ? { note: o.note } : {}) },
    };
  }).option('--note <text>', 'why');
  change('trigger', 'start a scheduled sweep now', (raw) => {
    const o = parseOptions(ScheduleOptionsSchema, raw);
    return { jurisdiction: getJurisdiction(o.jurisdiction).id, change: { kind: 'trigger' } };
  });
}
