import type { Command } from 'commander';
import { keyRotationWorkflowId, reidentifyWorkflowId, RequestKind } from '../../contracts';
import { getJurisdiction } from '../../jurisdictions';
import { KeysRotateOptionsSchema, ReidentifyOptionsSchema } from '../../schemas/cli';
import type { reidentifyWorkflow, rotateStudyKeyWorkflow } from '../../workflows';
import { EXIT, UserError } from '../../lib/runtime/errors';
import { CommandContext, type GlobalOptions } from '../context';
import { parseOptions, requestIdOf } from '../options';
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
    .option('--request-id <id>', 'resume the request an interrupted run started (it prints its request id)')
    .action(async (raw: Record<string, unknown>) => {
      const options = parseOptions(KeysRotateOptionsSchema, raw);
      getJurisdiction(options.jurisdiction);
      const ctx = CommandContext.create(globals());
      ctx.authorize('keys.rotate');
      try {
        const requestId = requestIdOf(options.requestId);
        const handle = await ctx.startRequest<typeof rotateStudyKeyWorkflow>('rotateStudyKeyWorkflow', {
          workflowId: keyRotationWorkflowId(options.jurisdiction, options.study, requestId),
          requestId,
          kind: RequestKind.KeyRotation,
          jurisdiction: options.jurisdiction,
          studyId: options.study,
          args: [{ jurisdiction: options.jurisdiction, studyId: options.study, requestedBy: ctx.config.principal }],
        });
        const result = await handle.result();
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
    .option('--request-id <id>', 'resume the request an interrupted run started (it prints its request id)')
    .action(async (token: string, raw: Record<string, unknown>) => {
      const options = parseOptions(ReidentifyOptionsSchema, raw);
      getJurisdiction(options.jurisdiction);
      const ctx = CommandContext.create(globals());
      try {
        const requestId = requestIdOf(options.requestId);
        // The role is checked inside the workflow, so that a denied attempt is audited too.
        const handle = await ctx.startRequest<typeof reidentifyWorkflow>('reidentifyWorkflow', {
          workflowId: reidentifyWorkflowId(options.jurisdiction, options.study, requestId),
          requestId,
          kind: RequestKind.Reidentification,
          jurisdiction: options.jurisdiction,
          studyId: options.study,
          args: [
            {
              jurisdiction: options.jurisdiction,
              studyId: options.study,
              token,
              reason: options.reason,
              requestedBy: ctx.config.principal,
            },
          ],
        });
        const result = await handle.result();
        if (ctx.json) printJson(result);
        else if (!result.found) {
          throw new UserError('no vault entry for this token (never vaulted, or destroyed)', EXIT.notRunning);
        } else say(result.identifier!);
      } finally {
        await ctx.close();
      }
    });
}
