import { randomUUID } from 'node:crypto';
import type { Command } from 'commander';
import { getJurisdiction } from '../../jurisdictions';
import { UserError } from '../../lib/errors';
import type { reidentifyWorkflow, rotateStudyKeyWorkflow } from '../../workflows';
import { ingestTaskQueue, keyRotationWorkflowId, SEARCH_ATTRIBUTES } from '../../workflows/contracts';
import { CommandContext, type GlobalOptions } from '../context';
import { printJson, say } from '../output';

export function registerKeyCommands(program: Command, globals: () => GlobalOptions): void {
  const keys = program
    .command('keys')
    .description("pseudonymization keys (material never leaves the jurisdiction's worker)");
  keys
    .command('rotate')
    .description('make a new key version current for a study (steward role); older versions stay live for look-ups')
    .requiredOption('--jurisdiction <id>', 'jurisdiction')
    .requiredOption('--study <id>', 'study id')
    .action(async (options: { jurisdiction: string; study: string }) => {
      getJurisdiction(options.jurisdiction);
      const ctx = CommandContext.create(globals());
      ctx.authorize('keys.rotate');
      try {
        const client = await ctx.temporal();
        const result = await client.workflow.execute<typeof rotateStudyKeyWorkflow>('rotateStudyKeyWorkflow', {
          args: [{ jurisdiction: options.jurisdiction, studyId: options.study, requestedBy: ctx.config.principal }],
          taskQueue: ingestTaskQueue(options.jurisdiction),
          workflowId: keyRotationWorkflowId(options.jurisdiction, options.study, randomUUID()),
          typedSearchAttributes: [
            { key: SEARCH_ATTRIBUTES.jurisdiction, value: options.jurisdiction },
            { key: SEARCH_ATTRIBUTES.studyId, value: options.study },
          ],
        });
        if (ctx.json) printJson(result);
        else {
          say(
            `Study ${result.studyId} (${result.jurisdiction}): key v${result.currentVersion} is current (was v${result.previousVersion})`,
          );
          for (const v of result.versions) say(`  v${v.version}  ${v.state.padEnd(9)}  created ${v.createdAt}`);
        }
      } finally {
        await ctx.close();
      }
    });
}

export function registerReidentifyCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command('reidentify')
    .description("resolve a token to the original identifier from the study's vault (dpo role; every use is audited)")
    .argument('<token>', 'a token such as v1.AbC…')
    .requiredOption('--jurisdiction <id>', 'jurisdiction')
    .requiredOption('--study <id>', 'study id')
    .requiredOption('--reason <text>', 'why (written to the audit trail)')
    .action(async (token: string, options: { jurisdiction: string; study: string; reason: string }) => {
      getJurisdiction(options.jurisdiction);
      const ctx = CommandContext.create(globals());
      try {
        const client = await ctx.temporal();
        // The role is checked inside the workflow, so that a denied attempt is audited too.
        const result = await client.workflow.execute<typeof reidentifyWorkflow>('reidentifyWorkflow', {
          args: [
            {
              jurisdiction: options.jurisdiction,
              studyId: options.study,
              token,
              reason: options.reason,
              requestedBy: ctx.config.principal,
            },
          ],
          taskQueue: ingestTaskQueue(options.jurisdiction),
          workflowId: `reidentify-${options.jurisdiction}-${options.study}-${randomUUID()}`,
          typedSearchAttributes: [
            { key: SEARCH_ATTRIBUTES.jurisdiction, value: options.jurisdiction },
            { key: SEARCH_ATTRIBUTES.studyId, value: options.study },
            { key: SEARCH_ATTRIBUTES.requestKind, value: 'reidentify' },
          ],
        });
        if (ctx.json) printJson(result);
        else if (!result.found) throw new UserError('no vault entry for this token (never vaulted, or destroyed)', 4);
        else say(result.identifier!);
      } finally {
        await ctx.close();
      }
    });
}
