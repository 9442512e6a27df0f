import type { Command } from 'commander';
import { getJurisdiction } from '../../jurisdictions';
import { StudyIdSchema } from '../../schemas/common';
import { UserError } from '../../lib/errors';
import { importConsent } from '../../lib/ingest-client';
import { CommandContext, type GlobalOptions } from '../context';
import { printJson, say } from '../output';

export function registerConsentCommands(program: Command, globals: () => GlobalOptions): void {
  const consent = program.command('consent').description('manage the consent registry of a study');
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
    .action(async (csv: string, options: { jurisdiction: string; study: string }) => {
      getJurisdiction(options.jurisdiction);
      if (!StudyIdSchema.safeParse(options.study).success)
        throw new UserError(`--study "${options.study}" is not a valid study id`);
      const ctx = CommandContext.create(globals());
      try {
        const result = await importConsent(
          { client: await ctx.temporal(), s3: ctx.s3(options.jurisdiction), principal: ctx.config.principal },
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
        }
      } finally {
        await ctx.close();
      }
    });
}
