import type { Command } from 'commander';
import { keyDestructionWorkflowId, keyRotationWorkflowId, reidentifyWorkflowId, RequestKind } from '../../contracts';
import { getJurisdiction } from '../../jurisdictions';
import { KeysDestroyOptionsSchema, KeysRotateOptionsSchema, ReidentifyOptionsSchema } from '../../schemas/cli';
import type { destroyStudyKeyWorkflow, reidentifyWorkflow, rotateStudyKeyWorkflow } from '../../workflows';
import { EXIT, UserError } from '../../lib/runtime/errors';
import { openSealed } from '../../lib/crypto/sealed-box';
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
      try {
        const requestId = requestIdOf(options.requestId);
        const handle = await ctx.startRequest<typeof rotateStudyKeyWorkflow>('rotateStudyKeyWorkflow', {
          workflowId: keyRotationWorkflowId(options.jurisdiction, options.study, requestId),
          requestId,
          kind: RequestKind.KeyRotation,
          action: 'keys.rotate',
          jurisdiction: options.jurisdiction,
          studyId: options.study,
          params: { jurisdiction: options.jurisdiction, studyId: options.study },
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
  registerKeyDestroyCommand(keys, globals);
}

export function registerKeyDestroyCommand(keys: Command, globals: () => GlobalOptions): void {
  keys
    .command('destroy')
    .description('crypto-erase a retired key version of a study (dpo, e-signed); issues a signed deletion certificate')
    .requiredOption('--jurisdiction <id>', 'jurisdiction')
    .requiredOption('--study <id>', 'study id')
    .requiredOption('--version <n>', 'the retired key version to destroy (the current one must be rotated first)')
    .option('--request-id <id>', 'resume the request an interrupted run started (it prints its request id)')
    .addHelpText(
      'after',
      '\nTokens made with the destroyed version can no longer be computed: look-ups of subjects in data keyed with it\n' +
        'are no longer possible. Your signature states its meaning: "approve cryptographic erase of <key>".',
    )
    .action(async (raw: Record<string, unknown>) => {
      const options = parseOptions(KeysDestroyOptionsSchema, raw);
      getJurisdiction(options.jurisdiction);
      const ctx = CommandContext.create(globals());
      try {
        const requestId = requestIdOf(options.requestId);
        const keyId = `study/${options.jurisdiction}/${options.study}/v${options.version}`;
        const handle = await ctx.startRequest<typeof destroyStudyKeyWorkflow>('destroyStudyKeyWorkflow', {
          workflowId: keyDestructionWorkflowId(options.jurisdiction, options.study, requestId),
          requestId,
          kind: RequestKind.KeyDestruction,
          action: 'keys.destroy',
          jurisdiction: options.jurisdiction,
          studyId: options.study,
          params: { jurisdiction: options.jurisdiction, studyId: options.study, version: options.version },
          meaning: `approve cryptographic erase of ${keyId}`,
        });
        const result = await handle.result();
        if (ctx.json) printJson(result);
        else {
          say(`Destroyed ${result.keyId}; deletion certificate ${result.certificateId}`);
          say(`  steward cert show ${result.certificateId} --out <dir>   (then verify it with OpenSSL alone)`);
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
          action: 'reidentify',
          jurisdiction: options.jurisdiction,
          studyId: options.study,
          params: { jurisdiction: options.jurisdiction, studyId: options.study, token, reason: options.reason },
          meaning: 'disclose the identifier behind a token',
        });
        const result = await handle.result();
        // Sealed to this command's identity: opened here, with its key, and nowhere else.
        const identifier = result.identifier
          ? openSealed((await ctx.identity()).key, result.identifier).toString('utf8')
          : null;
        if (ctx.json) printJson({ found: result.found, identifier });
        else if (!result.found) {
          throw new UserError('no vault entry for this token (never vaulted, or destroyed)', EXIT.notRunning);
        } else say(identifier!);
      } finally {
        await ctx.close();
      }
    });
}
