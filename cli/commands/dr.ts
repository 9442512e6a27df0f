import type { Command } from 'commander';
import { z } from 'zod';
import { replicationReport, type ReplicationReport } from '../../lib/client/replication';
import { EXIT, UserError } from '../../lib/runtime/errors';
import { getJurisdiction } from '../../jurisdictions';
import { JurisdictionIdSchema } from '../../schemas/jurisdiction';
import { CommandContext, type GlobalOptions } from '../context';
import { parseOptions } from '../options';
import { printJson, say } from '../output';

const StatusOptionsSchema = z.object({
  jurisdiction: JurisdictionIdSchema.optional(),
  maxLag: z.coerce.number().int().positive().optional(),
});

/** Seconds since everything stored at the primary was last known to have its replica; null before the first pass. */
export function lagSeconds(report: ReplicationReport, now = new Date()): number | null {
  const through = report.status.replicatedThrough;
  return through === null ? null : Math.max(0, Math.round((now.getTime() - Date.parse(through)) / 1000));
}

function bytes(n: number): string {
  return n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`;
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
              lagSeconds: r.lag,
              ...(r.report ? { ...r.report.status, retrying: r.report.retrying } : {}),
            })),
          );
        } else {
          for (const { jurisdiction, report, lag } of rows) {
            const { sites } = getJurisdiction(jurisdiction);
            const route = `${sites.primary.name} (${sites.primary.location}) → ${sites.dr.name} (${sites.dr.location})`;
            if (!report) {
              say(
                `${jurisdiction}: ${route}: NOT REPLICATING (no replication workflow runs; \`steward up\` starts it)`,
              );
              continue;
            }
            const { status } = report;
            say(
              `${jurisdiction}: ${route}: ` +
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
                `  last pass ${status.last.completedAt}: ${listed} versions at the primary, ${pending} without a replica`,
              );
              for (const b of status.last.buckets.filter((b) => b.foreign > 0)) {
                say(`  ${b.bucket}: ${b.foreign} versions at ${sites.dr.name} copy nothing at the primary`);
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
}
