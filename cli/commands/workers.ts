import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import type { DeployResult } from '../../lib/stack/stack';
import { deploymentName, describeDeployment } from '../../lib/stack/versions';
import { EXIT, UserError } from '../../lib/runtime/errors';
import { INSTALL_ROOT } from '../../lib/runtime/install';
import { JurisdictionIdSchema } from '../../schemas/jurisdiction';
import { CommandContext, type GlobalOptions } from '../context';
import { checkRole } from '../decisions';
import { parseOptions } from '../options';
import { note, printJson, say } from '../output';
import { askStack, runningProductionStack } from '../stack-request';

/** How long a deploy may take: bundling, the replay gate, new workers starting, the old ones finishing their tasks. */
const DEPLOY_WAIT_MS = 10 * 60_000;

const DeployOptionsSchema = z.object({
  jurisdiction: JurisdictionIdSchema.optional(),
  release: z.string().min(1).default(INSTALL_ROOT),
  reason: z.string().trim().min(3).max(2000),
});
const StatusOptionsSchema = z.object({ jurisdiction: JurisdictionIdSchema.optional() });

function runningStack(ctx: CommandContext) {
  return runningProductionStack(
    ctx,
    'rolling deploys need the production profile (Worker Versioning on the Temporal cluster); the embedded stack ' +
      'takes new code with `steward down` and `steward up`',
  );
}

export function registerWorkerCommands(program: Command, globals: () => GlobalOptions): void {
  const workers = program
    .command('workers')
    .description("the stack's workers: which release each jurisdiction runs, and rolling deploys of a new one");

  workers
    .command('deploy')
    .description(
      'make a release current for a jurisdiction’s workers (ops; signed, audited): its bundle must replay the recorded ' +
        'histories of every workflow type and the histories of the workflows running now, then workers of it start, ' +
        'become the current Worker Deployment version, and the old workers stop; running workflows move to it',
    )
    .option('--jurisdiction <id>', 'one jurisdiction (default: each the stack serves, one after another)')
    .option(
      '--release <dir>',
      'a source checkout of the release, dependencies installed (`npm ci`); default: this installation',
    )
    .requiredOption('--reason <text>', 'why, for the audit trail')
    .addHelpText(
      'after',
      '\nExit codes: 0 deployed (or already current), 3 refused by the replay gate or the stack, 4 no production stack.',
    )
    .action(async (raw: Record<string, unknown>) => {
      const options = parseOptions(DeployOptionsSchema, raw);
      const ctx = CommandContext.create(globals());
      try {
        const state = runningStack(ctx);
        await checkRole(ctx, 'workers.deploy');
        const release = path.resolve(options.release);
        const jurisdictions = options.jurisdiction ? [options.jurisdiction] : Object.keys(state.jurisdictions);
        for (const j of jurisdictions) {
          if (!state.jurisdictions[j]) throw new UserError(`the running stack does not serve ${j}`, EXIT.usage);
        }
        const results: (DeployResult & { jurisdiction: string })[] = [];
        for (const jurisdiction of jurisdictions) {
          const requestId = randomUUID();
          const input = await ctx.sign({
            action: 'workers.deploy',
            jurisdiction,
            params: { release, reason: options.reason },
            requestId,
            meaning: `deploy ${release} to the ${jurisdiction} workers`,
          });
          note(`asking the stack (pid ${state.pid}) to deploy ${release} to ${deploymentName(jurisdiction)}…`);
          const result = await askStack<DeployResult>(
            ctx.config.dataDir,
            state,
            input.request,
            requestId,
            DEPLOY_WAIT_MS,
          );
          results.push({ jurisdiction, ...result });
          if (!ctx.json) printResult(jurisdiction, result);
          if (result.outcome === 'refused' || result.outcome === 'failed') break;
        }
        if (ctx.json) printJson(results);
        const last = results[results.length - 1]!;
        if (last.outcome === 'refused') process.exitCode = EXIT.rejected;
        if (last.outcome === 'failed') process.exitCode = EXIT.failure;
      } finally {
        await ctx.close();
      }
    });

  workers
    .command('status')
    .description("each jurisdiction's Worker Deployment: the current build, the versions Temporal knows, the workers")
    .option('--jurisdiction <id>', 'one jurisdiction (default: each the stack serves)')
    .action(async (raw: Record<string, unknown>) => {
      const options = parseOptions(StatusOptionsSchema, raw);
      const ctx = CommandContext.create(globals());
      try {
        const state = runningStack(ctx);
        const client = await ctx.temporal();
        const jurisdictions = options.jurisdiction ? [options.jurisdiction] : Object.keys(state.jurisdictions);
        const report = [];
        for (const jurisdiction of jurisdictions) {
          const { current, versions } = await describeDeployment(client, jurisdiction);
          report.push({
            jurisdiction,
            deployment: deploymentName(jurisdiction),
            current: current ?? null,
            versions,
            workers: state.workers.filter((w) => w.jurisdiction === jurisdiction),
          });
        }
        if (ctx.json) {
          printJson(report);
          return;
        }
        for (const r of report) {
          say(`${r.deployment}: current build ${r.current ?? '(none)'}`);
          for (const v of r.versions)
            say(`  version ${v.buildId}  ${v.status}${v.createdAt ? `  since ${v.createdAt}` : ''}`);
          for (const w of r.workers)
            say(`  worker pid ${w.pid ?? '-'}  build ${w.buildId ?? '-'}  restarts ${w.restarts}`);
        }
      } finally {
        await ctx.close();
      }
    });
}

function printResult(jurisdiction: string, result: DeployResult): void {
  const name = deploymentName(jurisdiction);
  if (result.outcome === 'refused' || result.outcome === 'failed') {
    say(`${name}: ${result.outcome.toUpperCase()}: ${result.reason}`);
    for (const f of result.failures ?? []) say(`  does not replay: ${f}`);
    if (result.outcome === 'refused' && result.previous) say(`  build ${result.previous} stays current`);
  } else if (result.outcome === 'unchanged') {
    say(`${name}: build ${result.buildId} is already current; nothing to do`);
  } else {
    say(
      `${name}: build ${result.buildId} is current (was ${result.previous ?? 'none'}); ` +
        `${result.replayed} histories replayed; the old workers stopped`,
    );
  }
}
