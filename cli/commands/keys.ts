import type { Command } from 'commander';
import {
  ingestTaskQueue,
  keyRotationWorkflowId,
  reidentifyWorkflowId,
  RequestKind,
  SEARCH_ATTRIBUTES,
} from '../../contracts';
import { getJurisdiction } from '../../jurisdictions';
import { KeysRotateOptionsSchema, ReidentifyOptionsSchema } from '../../schemas/cli';
import type { reidentifyWorkflow, rotateStudyKeyWorkflow } from '../../workflows';
import { startOrAttach } from '../../lib/client/start';
import { EXIT, UserError } from '../../lib/runtime/errors';
import { CommandContext, type GlobalOptions } from '../context';
import { parseOptions, requestIdOf } from '../options';
import { note, printJson, say } from '../output';

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
        const { handle, started } = await startOrAttach<typeof rotateStudyKeyWorkflow>(
          await ctx.temporal(),
          'rotateStudyKeyWorkflow',
          {
            args: [{ jurisdiction: options.jurisdiction, studyId: options.study, requestedBy: ctx.config.principal }],
            taskQueue: ingestTaskQueue(options.jurisdiction),
            workflowId: keyRotationWorkflowId(options.jurisdiction, options.study, requestId),
            workflowIdReusePolicy: 'REJECT_DUPLICATE',
            typedSearchAttributes: [
              { key: SEARCH_ATTRIBUTES.jurisdiction, value: options.jurisdiction },
              { key: SEARCH_ATTRIBUTES.studyId, value: options.study },
              { key: SEARCH_ATTRIBUTES.requestId, value: requestId },
              { key: SEARCH_ATTRIBUTES.requestKind, value: RequestKind.KeyRotation },
            ],
          },
        );
        if (!started) note(`found request ${requestId} started earlier; showing its outcome`);
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
        const { handle } = await startOrAttach<typeof reidentifyWorkflow>(await ctx.temporal(), 'reidentifyWorkflow', {
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
          workflowId: reidentifyWorkflowId(options.jurisdiction, options.study, requestId),
          workflowIdReusePolicy: 'REJECT_DUPLICATE',
          typedSearchAttributes: [
            { key: SEARCH_ATTRIBUTES.jurisdiction, value: options.jurisdiction },
            { key: SEARCH_ATTRIBUTES.studyId, value: options.study },
            { key: SEARCH_ATTRIBUTES.requestId, value: requestId },
            { key: SEARCH_ATTRIBUTES.requestKind, value: RequestKind.Reidentification },
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
