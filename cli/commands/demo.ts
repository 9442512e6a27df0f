import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import type { Command } from 'commander';
import { ingestWorkflowId, RequestKind, sourceRegistrationWorkflowId } from '../../contracts';
import type { registerSourceWorkflow } from '../../workflows';
import { readLocalPackage } from '../../lib/client/submit';
import { InvalidArgumentError } from 'commander';
import { getJurisdiction, JURISDICTION_IDS } from '../../jurisdictions';
import { StudyIdSchema } from '../../schemas/common';
import { defaultDataDir, readStackState } from '../../lib/runtime/config';
import { isAlive } from '../../lib/stack/process';
import { generateDemoPackage } from '../demo/generate';
import { writeExpiredDemoDatasets } from '../demo/expired';
import { ensureDemoSource, type DemoSource } from '../demo/source';
import { subjectRightsDemo } from '../demo/subject-rights';
import { importConsent } from '../../lib/client/consent-import';
import { CommandContext, type GlobalOptions } from '../context';
import { byteBar, formatDataset, note, printJson, say } from '../output';
import { ingestPath } from './ingest';
import { describeStack, startForeground, waitForShutdown } from './stack';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

function studyId(value: string): string {
  if (!StudyIdSchema.safeParse(value).success)
    throw new InvalidArgumentError('must be 1-64 letters, digits, ".", "_" or "-"');
  return value;
}

export function registerDemoCommands(program: Command, globals: () => GlobalOptions): void {
  const demo = program.command('demo').description('synthetic clinical-trial data to try Steward with');
  demo
    .command('generate')
    .description('write a seeded synthetic package (BagIt) and its consent CSV')
    .requiredOption('--out <dir>', 'output directory (package/ and consent.csv are written there)')
    .option('--jurisdiction <id>', `jurisdiction (${JURISDICTION_IDS.join(', ')})`, 'eu')
    .option('--study <id>', 'study id', studyId, 'STEW-001')
    .option('--rows <n>', 'lab result rows', positiveInt, 2000)
    .option('--subjects <n>', 'subjects', positiveInt, 200)
    .option('--seed <n>', 'random seed; the same seed writes the same bytes', positiveInt, 1)
    .option('--purpose <scope>', 'consent scope the package needs', 'primary-research')
    .option(
      '--vault',
      "keep the study's re-identification vault (enables `steward reidentify` and re-pseudonymization)",
    )
    .action(
      async (options: {
        out: string;
        jurisdiction: string;
        study: string;
        rows: number;
        subjects: number;
        seed: number;
        purpose: string;
        vault?: boolean;
      }) => {
        getJurisdiction(options.jurisdiction);
        const g = globals();
        const source = await ensureDemoSource(g.dataDir ? path.resolve(g.dataDir) : defaultDataDir());
        const bar = byteBar('writing lab rows');
        const result = await generateDemoPackage({
          out: path.resolve(options.out),
          jurisdiction: options.jurisdiction,
          studyId: options.study,
          rows: options.rows,
          subjects: options.subjects,
          seed: options.seed,
          purpose: options.purpose,
          vault: options.vault === true,
          source,
          onProgress: (d, t) => bar.update(d, t),
        });
        bar.stop();
        const signedBy = { name: source.name, certificate: source.certificateFile };
        if (g.json) printJson({ ...result, source: signedBy });
        else {
          say(`Package: ${result.packageDir}\nConsent: ${result.consentFile}`);
          say(`Signed by the demo source "${source.name}" (certificate ${source.certificateFile})`);
          say(
            `${result.subjects} subjects; consent given ${result.consent.given}, other scope only ${result.consent.scopeOnly}, ` +
              `withdrawn ${result.consent.withdrawn}, never consented ${result.consent.never}`,
          );
        }
      },
    );

  demo
    .command('expired')
    .description(
      'write synthetic datasets whose retention has ended (random bytes, no subject data), to try a sweep with',
    )
    .option('--jurisdiction <id>', `jurisdiction (${JURISDICTION_IDS.join(', ')})`, 'eu')
    .option('--study <id>', 'study id', studyId, 'DEMO-EXPIRED')
    .option('--datasets <n>', 'datasets', positiveInt, 20)
    .option('--objects <n>', 'objects per dataset', positiveInt, 5)
    .action(async (options: { jurisdiction: string; study: string; datasets: number; objects: number }) => {
      const jurisdiction = getJurisdiction(options.jurisdiction);
      const ctx = CommandContext.create(globals());
      try {
        note(`writing ${options.datasets} datasets of ${options.objects} objects to ${jurisdiction.buckets.curated}…`);
        const ids = await writeExpiredDemoDatasets(ctx.s3(jurisdiction.id), jurisdiction, {
          studyId: options.study,
          datasets: options.datasets,
          objectsPerDataset: options.objects,
        });
        if (globals().json) printJson(ids);
        else {
          say(`Wrote ${ids.length} expired datasets of study ${options.study} in ${jurisdiction.id}, e.g. ${ids[0]}`);
          say(`  steward retention sweep --jurisdiction ${jurisdiction.id} --dry-run   (then without --dry-run)`);
        }
      } finally {
        await ctx.close();
      }
    });

  demo
    .command('run')
    .description(
      'ingest synthetic packages into EU and US and serve an access and an erasure request: on the stack running for ' +
        'the data dir (any profile), else on an embedded stack it starts and keeps running (npm start)',
    )
    .option('--rows <n>', 'lab result rows per package', positiveInt, 5000)
    .action(async (options: { rows: number }) => {
      const g = globals();
      const dataDir = g.dataDir ? path.resolve(g.dataDir) : defaultDataDir();
      const running = readStackState(dataDir);
      const stack = running && isAlive(running.pid) ? undefined : await startForeground(dataDir, JURISDICTION_IDS);
      const state = stack?.state ?? running!;
      say(`Steward stack running\n${describeStack(state)}\n`);
      const ctx = CommandContext.create({ ...g, dataDir });
      const source = await ensureDemoSource(dataDir);
      let euConsent = '';
      try {
        for (const [i, jurisdiction] of (['eu', 'us'] as const).entries()) {
          const study = `DEMO-${jurisdiction.toUpperCase()}-01`;
          await registerDemoSource(ctx, jurisdiction, study, source);
          note(`generating a synthetic ${jurisdiction.toUpperCase()} package, signed by the demo source…`);
          const generated = await generateDemoPackage({
            out: path.join(dataDir, 'demo', jurisdiction),
            jurisdiction,
            studyId: study,
            rows: options.rows,
            subjects: 300,
            seed: i + 1,
            source,
          });
          const consent = await importConsent(
            { client: await ctx.temporal(), s3: ctx.s3(jurisdiction), identity: await ctx.identity() },
            generated.consentFile,
            jurisdiction,
            study,
          );
          say(`Consent registry ${jurisdiction}/${study}: ${consent.given} given, ${consent.withdrawn} withdrawn`);
          if (jurisdiction === 'eu') euConsent = generated.consentFile;
          const result = await ingestPath(ctx, generated.packageDir);
          say(`${formatDataset(result.record, result.resubmitted ? 'already ingested' : result.outcome)}\n`);
          const url = ctx.uiUrl(result.record.lineage.workflowId);
          if (url) say(`  Temporal UI: ${url}\n`);
        }
        await ingestRejectedDemo(ctx, path.join(dataDir, 'demo', 'eu-rejected'));
        const dpo = CommandContext.create({ ...g, dataDir, identity: path.join(dataDir, 'identities', 'dpo') });
        try {
          await subjectRightsDemo(dpo, euConsent, 'DEMO-EU-01');
        } finally {
          await dpo.close();
        }
      } catch (error) {
        await ctx.close();
        await stack?.stop();
        throw error;
      }
      await ctx.close();
      if (!stack) return;
      say(`Temporal UI: ${stack.state.temporal.uiUrl}\nThe stack keeps running; Ctrl-C stops it.`);
      await waitForShutdown(stack);
    });
}

/** Registers the demo source for a demo study (signed by the demo steward, audited), so its signature is checked. */
async function registerDemoSource(
  ctx: CommandContext,
  jurisdiction: string,
  studyId: string,
  source: DemoSource,
): Promise<void> {
  const requestId = randomUUID();
  const handle = await ctx.startRequest<typeof registerSourceWorkflow>('registerSourceWorkflow', {
    workflowId: sourceRegistrationWorkflowId(jurisdiction, studyId, requestId),
    requestId,
    kind: RequestKind.SourceRegistration,
    action: 'sources.register',
    jurisdiction,
    studyId,
    params: { studyId, name: source.name, certificatePem: source.certificatePem, required: true },
    meaning: 'register a source system for the study',
  });
  const result = await handle.result();
  say(`Source "${result.name}" registered for ${studyId}: its packages must carry its signature`);
}

/**
 * A package with one impossible date: its ingestion is rejected and quarantined, so the Web UI has a failed workflow
 * whose reason ops can read through the codec server.
 */
async function ingestRejectedDemo(ctx: CommandContext, out: string): Promise<void> {
  const study = 'DEMO-EU-02';
  note('generating a synthetic EU package with one impossible date (to be rejected)…');
  const generated = await generateDemoPackage({
    out,
    jurisdiction: 'eu',
    studyId: study,
    rows: 200,
    subjects: 20,
    seed: 3,
    badRow: true,
  });
  await importConsent(
    { client: await ctx.temporal(), s3: ctx.s3('eu'), identity: await ctx.identity() },
    generated.consentFile,
    'eu',
    study,
  );
  const pkg = await readLocalPackage(generated.packageDir);
  try {
    await ingestPath(ctx, generated.packageDir);
    throw new Error('the damaged demo package was accepted');
  } catch (error) {
    if (!(error instanceof WorkflowFailedError)) throw error;
    say(`Rejected as it should be: ${study} (a lab row dated 2025-02-30), moved to quarantine`);
    const url = ctx.uiUrl(ingestWorkflowId('eu', pkg.packageId));
    if (url) say(`  Temporal UI: ${url}  (the reason is readable through the codec server)\n`);
  }
}
