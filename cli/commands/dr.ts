import { randomUUID } from 'node:crypto';
import type { Command } from 'commander';
import { z } from 'zod';
import { replicationReport, type ReplicationReport } from '../../lib/client/replication';
import { EXIT, UserError } from '../../lib/runtime/errors';
import { getJurisdiction, siteRoles } from '../../jurisdictions';
import { JurisdictionIdSchema } from '../../schemas/jurisdiction';
import { CommandContext, type GlobalOptions } from '../context';
import { parseOptions } from '../options';
import { checkRole } from '../decisions';
import { note, printJson, say } from '../output';
import { askStack, runningProductionStack } from '../stack-request';
import type { SwitchResult } from '../../lib/stack/stack';

const StatusOptionsSchema = z.object({
  jurisdiction: JurisdictionIdSchema.optional(),
  maxLag: z.coerce.number().int().positive().optional(),
});

/** Seconds since everything stored at the primary was last known to have its replica; null before the first pass. */
export function lagSeconds(report: ReplicationReport, now = new Date()): number | null {
  const through = report.status.replicatedThrough;
  return through === null ? null : Math.max(0, Math.round((now.getTime() - Date.parse(through)) / 1000));
}

/** Whether the stack runs the jurisdiction's workers on its DR site (`steward dr failover`). */
function failedOverIn(ctx: CommandContext, jurisdiction: string): boolean {
  return ctx.config.stack?.jurisdictions[jurisdiction]?.storage?.active === 'dr';
}

function bytes(n: number): string {
  return n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

const SwitchOptionsSchema = z.object({
  jurisdiction: JurisdictionIdSchema,
  reason: z.string().trim().min(3).max(2000),
});

/** How long a switch may take: the workers stopping, a last replication pass, new workers starting. */
const SWITCH_WAIT_MS = 10 * 60_000;

async function switchSite(
  action: 'dr.failover' | 'dr.failback',
  raw: Record<string, unknown>,
  globals: () => GlobalOptions,
): Promise<void> {
  const options = parseOptions(SwitchOptionsSchema, raw);
  const ctx = CommandContext.create(globals());
  try {
    const state = runningProductionStack(
      ctx,
      'the embedded stack has no disaster-recovery site to fail over to: `steward up --profile production` runs one',
    );
    if (!state.jurisdictions[options.jurisdiction]) {
      throw new UserError(`the running stack does not serve ${options.jurisdiction}`, EXIT.usage);
    }
    await checkRole(ctx, action);
    // The site the workers are to write to, and the one they leave.
    const { active: to, standby: from } = siteRoles(
      getJurisdiction(options.jurisdiction).sites,
      action === 'dr.failover' ? 'dr' : 'primary',
    );
    const requestId = randomUUID();
    const input = await ctx.sign({
      action,
      jurisdiction: options.jurisdiction,
      params: { reason: options.reason },
      requestId,
      meaning: `move the ${options.jurisdiction} workers from ${from.name} to ${to.name}`,
    });
    note(`asking the stack (pid ${state.pid}) to move the ${options.jurisdiction} workers to ${to.name}…`);
    const result = await askStack<SwitchResult>(ctx.config.dataDir, state, input.request, requestId, SWITCH_WAIT_MS);
    if (ctx.json) printJson({ jurisdiction: options.jurisdiction, ...result });
    else if (result.outcome === 'switched') {
      say(`${options.jurisdiction}: the workers write to ${result.active} and replicate to ${result.previous}`);
      say(
        'copied' in result.finalPass
          ? `  last pass from ${result.previous}: ${result.finalPass.copied} versions copied, ${result.finalPass.held} held`
          : `  no last pass from ${result.previous} (${result.finalPass.skipped}); what it holds that never reached ${result.active} stays held there`,
      );
    } else if (result.outcome === 'unchanged') {
      say(`${options.jurisdiction}: the workers already write to ${result.active}; nothing to do`);
    } else say(`${options.jurisdiction}: ${result.outcome.toUpperCase()}: ${result.reason}`);
    if (result.outcome === 'refused') process.exitCode = EXIT.rejected;
    if (result.outcome === 'failed') process.exitCode = EXIT.failure;
  } finally {
    await ctx.close();
  }
}

export function registerDrCommands(program: Command, globals: () => GlobalOptions): void {
  const dr = program
    .command('dr')
    .description(
      "disaster recovery: each jurisdiction's primary storage site replicated to its DR site inside the jurisdiction",
    );

  dr.command('status')
    .description(
      'per jurisdiction: the two sites, the replication lag (since when every version at the primary has a verified ' +
        'replica), what the passes copied and pruned, and a failure the current pass is retrying',
    )
    .option('--jurisdiction <id>', 'one jurisdiction (default: each the deployment serves)')
    .option('--max-lag <seconds>', 'exit 5 when a jurisdiction lags more than this (for monitoring)')
    .addHelpText('after', '\nExit codes: 0 replicating, 4 no stack, 5 behind --max-lag, not replicating, or retrying.')
    .action(async (raw: Record<string, unknown>) => {
      const options = parseOptions(StatusOptionsSchema, raw);
      const ctx = CommandContext.create(globals());
      try {
        const served = options.jurisdiction ? [options.jurisdiction] : ctx.config.jurisdictions;
        const stack = ctx.config.stack;
        if (stack && stack.profile !== 'production') {
          throw new UserError(
            'the embedded stack has one storage process and no disaster-recovery site: `steward up --profile ' +
              'production` runs a primary and a DR site per jurisdiction',
            EXIT.usage,
          );
        }
        const client = await ctx.temporal();
        const now = new Date();
        const rows = [];
        for (const jurisdiction of served) {
          const report = await replicationReport(client, jurisdiction);
          rows.push({ jurisdiction, report, lag: report ? lagSeconds(report, now) : null });
        }
        const behind = rows.filter(
          (r) =>
            !r.report ||
            r.lag === null ||
            r.report.retrying ||
            (options.maxLag !== undefined && r.lag > options.maxLag),
        );
        if (ctx.json) {
          printJson(
            rows.map((r) => ({
              jurisdiction: r.jurisdiction,
              replicating: r.report !== undefined,
              failedOver: failedOverIn(ctx, r.jurisdiction),
              lagSeconds: r.lag,
              ...(r.report ? { ...r.report.status, retrying: r.report.retrying } : {}),
            })),
          );
        } else {
          for (const { jurisdiction, report, lag } of rows) {
            // After a failover the workers write to the DR site and replicate to the primary.
            const failedOver = failedOverIn(ctx, jurisdiction);
            const { active: from, standby: to } = siteRoles(
              getJurisdiction(jurisdiction).sites,
              failedOver ? 'dr' : 'primary',
            );
            const route = `${from.name} (${from.location}) → ${to.name} (${to.location})`;
            if (!report) {
              say(
                `${jurisdiction}: ${route}: NOT REPLICATING (no replication workflow runs; \`steward up\` starts it)`,
              );
              continue;
            }
            const { status } = report;
            say(
              `${jurisdiction}: ${route}${failedOver ? ' (FAILED OVER: `steward dr failback` returns)' : ''}: ` +
                (status.replicatedThrough
                  ? `replicated through ${status.replicatedThrough} (lag ${lag} s)`
                  : 'no complete pass yet'),
            );
            say(
              `  ${status.passes} passes; ${status.totals.copied} versions copied (${bytes(status.totals.copiedBytes)}), ` +
                `${status.totals.pruned} replicas pruned after deletions at the primary, ${status.totals.vanished} copies of versions deleted while copied`,
            );
            if (status.last) {
              const pending = status.last.buckets.reduce((n, b) => n + b.pending, 0);
              const listed = status.last.buckets.reduce((n, b) => n + b.listed, 0);
              say(
                `  last pass ${status.last.completedAt}: ${listed} versions at ${status.primary}, ${pending} without a replica`,
              );
              for (const b of status.last.buckets.filter((b) => b.foreign > 0)) {
                say(`  ${b.bucket}: ${b.foreign} versions at ${status.dr} copy nothing at ${status.primary}`);
              }
              for (const b of status.last.buckets.filter((b) => (b.held ?? 0) > 0)) {
                say(
                  `  ${b.bucket}: ${b.held} versions held at one site: written before a failover, they never reached the other (kept, not copied)`,
                );
              }
            }
            if (report.retrying) say(`  RETRYING (attempt ${report.retrying.attempt}): ${report.retrying.message}`);
          }
        }
        if (behind.length > 0) process.exitCode = EXIT.degraded;
      } finally {
        await ctx.close();
      }
    });

  dr.command('failover')
    .description(
      "move a jurisdiction's workers to its DR site (ops; signed, audited): they stop, a last pass copies what the " +
        'primary holds if it answers, and workers start that write to the DR site and replicate to the primary',
    )
    .requiredOption('--jurisdiction <id>', 'the jurisdiction')
    .requiredOption('--reason <text>', 'why, for the audit trail')
    .addHelpText(
      'after',
      '\nExit codes: 0 failed over (or already), 3 refused (the DR site does not answer), 4 no production stack.',
    )
    .action((raw: Record<string, unknown>) => switchSite('dr.failover', raw, globals));

  dr.command('failback')
    .description(
      "move a jurisdiction's workers back to its primary site (ops; signed, audited): they stop, a last pass copies " +
        'to the primary what it lacks, and workers start that write to the primary and replicate to the DR site',
    )
    .requiredOption('--jurisdiction <id>', 'the jurisdiction')
    .requiredOption('--reason <text>', 'why, for the audit trail')
    .addHelpText(
      'after',
      '\nExit codes: 0 failed back (or already), 1 the last pass failed (the workers stay on the DR site), 3 refused, 4 no production stack.',
    )
    .action((raw: Record<string, unknown>) => switchSite('dr.failback', raw, globals));
}
