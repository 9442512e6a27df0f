import type { Command } from 'commander';
import { consentWithdrawalWorkflowId, RequestKind } from '../../contracts';
import { getJurisdiction } from '../../jurisdictions';
import { ConsentImportOptionsSchema, ConsentWithdrawOptionsSchema } from '../../schemas/cli';
import type { withdrawConsentWorkflow } from '../../workflows';
import { assertConsentFile, importConsent } from '../../lib/client/consent-import';
import { CommandContext, type GlobalOptions } from '../context';
import { parseOptions, requestIdOf } from '../options';
import { printJson, say } from '../output';

export function registerConsentCommands(program: Command, globals: () => GlobalOptions): void {
  const consent = program.command('consent').description('manage the consent registry of a study');
  consent
    .command('withdraw')
    .description("record a subject's consent withdrawal (dpo role); lists the datasets that already hold the subject")
    .requiredOption('--subject <id>', "the subject's identifier as the source systems know it")
    .requiredOption('--study <id>', 'study id')
    .requiredOption('--jurisdiction <id>', "jurisdiction of the study's registry")
    .requiredOption('--reason <text>', 'why (recorded in the registry, in the jurisdiction)')
    .option('--scope <scope...>', 'withdraw only these consent scopes (default: all)')
    .option('--request-id <id>', 'resume the request an interrupted run started (it prints its request id)')
    .action(async (raw: Record<string, unknown>) => {
      const options = parseOptions(ConsentWithdrawOptionsSchema, raw);
      getJurisdiction(options.jurisdiction);
      const ctx = CommandContext.create(globals());
      try {
        const requestId = requestIdOf(options.requestId);
        const handle = await ctx.startRequest<typeof withdrawConsentWorkflow>('withdrawConsentWorkflow', {
          workflowId: consentWithdrawalWorkflowId(options.jurisdiction, options.study, requestId),
          requestId,
          kind: RequestKind.ConsentWithdrawal,
          action: 'consent.withdraw',
          jurisdiction: options.jurisdiction,
          studyId: options.study,
          params: {
            jurisdiction: options.jurisdiction,
            studyId: options.study,
            subjectId: options.subject,
            scopes: options.scope ?? [],
            reason: options.reason,
          },
          meaning: `withdraw the subject's consent (${options.scope?.join(', ') ?? 'all scopes'})`,
        });
        const result = await handle.result();
        if (ctx.json) printJson(result);
        else {
          say(
            result.status === 'withdrawn'
              ? `Consent withdrawn for the subject in study ${options.study} (${options.jurisdiction}), effective ${result.effectiveOn}: excluded from every future ingestion.`
              : `Scopes withdrawn, effective ${result.effectiveOn}; remaining: ${result.remainingScopes.join(', ')}.`,
          );
          if (result.datasets.length === 0) say('No curated dataset holds the subject.');
          else {
            say('Curated datasets holding the subject (erasure is a separate request):');
            for (const hit of result.datasets) say(`  ${hit.datasetId}  ${hit.table}: ${hit.rows} rows`);
          }
        }
      } finally {
        await ctx.close();
      }
    });
  consent
    .command('import')
    .description("load consent records (CSV) into a study's consent registry in one jurisdiction")
    .argument('<csv>', 'CSV with columns subject_id, scopes, status, icf_version, given_on[, withdrawn_on, expires_on]')
    .requiredOption('--jurisdiction <id>', 'jurisdiction the registry lives in')
    .requiredOption('--study <id>', 'study id')
    .addHelpText(
      'after',
      '\nscopes are separated by ";" (e.g. primary-research;secondary-research); status is given or withdrawn;\n' +
        'dates are YYYY-MM-DD. Subjects are stored by pseudonymous token only. A newer record wins over an older one.',
    )
    .action(async (csv: string, raw: Record<string, unknown>) => {
      getJurisdiction(String(raw.jurisdiction));
      const options = parseOptions(ConsentImportOptionsSchema, raw);
      await assertConsentFile(csv);
      const ctx = CommandContext.create(globals());
      try {
        const result = await importConsent(
          { client: await ctx.temporal(), s3: ctx.s3(options.jurisdiction), identity: await ctx.identity() },
          csv,
          options.jurisdiction,
          options.study,
        );
        if (ctx.json) printJson(result);
        else {
          say(
            `Imported ${result.rows} consent records for study ${result.studyId} in ${result.jurisdiction}: ` +
              `${result.given} given, ${result.withdrawn} withdrawn; ${result.subjectsInRegistry} subjects in the registry`,
          );
          if (result.conflicts > 0) {
            say(
              `${result.conflicts} subjects had a stored record of the same date with a different decision; the imported one now applies`,
            );
          }
        }
      } finally {
        await ctx.close();
      }
    });
}
