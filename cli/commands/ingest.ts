import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import type { IngestPackageResult } from '../../schemas/ingest';
import { readLocalPackage, submitPackage } from '../../lib/client/submit';
import { ingestProgressQuery } from '../../contracts';
import { CommandContext, type GlobalOptions } from '../context';
import { byteBar, formatDataset, note, printJson, say } from '../output';

const PHASE_TEXT: Record<string, string> = {
  authorizing: 'verifying the signed request',
  verifying: 'verifying checksums and manifest',
  curating: 'validating rows, applying consent, pseudonymizing, writing Parquet',
  recording: 'recording the dataset in the catalog',
  quarantining: 'moving the rejected package to quarantine',
  discarding: 'removing what the unfinished ingestion wrote',
};

/** Submits a package and waits for its dataset, showing upload progress and the workflow's phases. */
export async function ingestPath(
  ctx: CommandContext,
  dir: string,
): Promise<IngestPackageResult & { resubmitted: boolean }> {
  const pkg = await readLocalPackage(dir);
  const client = await ctx.temporal();
  const bar = byteBar(`uploading ${pkg.files.length} files to ${pkg.metadata.jurisdiction} landing`);
  const { handle, started } = await submitPackage(
    {
      client,
      s3: ctx.s3(pkg.metadata.jurisdiction),
      identity: await ctx.identity(),
      onUpload: (d, t) => bar.update(d, t),
    },
    pkg,
  );
  bar.stop();
  note(
    `${started ? 'started' : 'found'} workflow ${handle.workflowId}${ctx.uiUrl(handle.workflowId) ? ` — ${ctx.uiUrl(handle.workflowId)}` : ''}`,
  );
  let done = false;
  const watcher = (async () => {
    let last = '';
    while (!done) {
      const progress = await handle.query(ingestProgressQuery).catch(() => undefined);
      const text = progress ? PHASE_TEXT[progress.phase] : undefined;
      if (text && text !== last) {
        note(`… ${text}`);
        last = text;
      }
      await sleep(500);
    }
  })();
  try {
    return { ...(await handle.result()), resubmitted: !started };
  } finally {
    done = true;
    await watcher;
  }
}

export function registerIngestCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command('ingest')
    .description('ingest a data package (BagIt bag or directory with manifest.json) into its jurisdiction')
    .argument('<path>', 'package directory')
    .addHelpText(
      'after',
      "\nThe package is uploaded to its jurisdiction's landing bucket; a workflow verifies every checksum, validates rows,\n" +
        'excludes subjects without consent, pseudonymizes identifiers and writes Parquet to the curated bucket.\n' +
        'A rejected package is moved to quarantine with its reasons (exit code 3). The same package twice is one dataset.',
    )
    .action(async (dir: string) => {
      const ctx = CommandContext.create(globals());
      try {
        const result = await ingestPath(ctx, dir);
        if (ctx.json) printJson(result);
        else say(formatDataset(result.record, result.resubmitted ? 'already ingested' : result.outcome));
      } finally {
        await ctx.close();
      }
    });
}
