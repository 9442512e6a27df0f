import type { Command } from 'commander';
import { getJurisdiction } from '../../jurisdictions';
import type { DatasetRecord } from '../../schemas/dataset';
import { EXIT, UserError } from '../../lib/runtime/errors';
import type { rePseudonymizeDatasetWorkflow } from '../../workflows';
import {
  ingestTaskQueue,
  jurisdictionOfDatasetId,
  RequestKind,
  rePseudonymizeWorkflowId,
  SEARCH_ATTRIBUTES,
} from '../../contracts';
import { DatasetArgumentSchema, DatasetsListOptionsSchema } from '../../schemas/cli';
import { startOrAttach } from '../../lib/client/start';
import { parseOptions } from '../options';
import { listDatasetRecords, readDatasetRecord, readStudyRecord } from '../../lib/storage/catalog';
import { CommandContext, type GlobalOptions } from '../context';
import { formatDataset, printJson, say } from '../output';

async function listDatasets(ctx: CommandContext, jurisdictions: string[]): Promise<DatasetRecord[]> {
  const records: DatasetRecord[] = [];
  for (const id of jurisdictions) {
    records.push(...(await listDatasetRecords(ctx.s3(id), getJurisdiction(id).buckets.catalog)));
  }
  return records.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}

/** The jurisdiction a dataset id names (`ds-<jurisdiction>-<24 hex digits>`). */
function jurisdictionOfDataset(datasetId: string) {
  const id = jurisdictionOfDatasetId(datasetId);
  if (!id) throw new UserError(`"${datasetId}" is not a dataset id (ds-<jurisdiction>-<24 hex digits>)`);
  return getJurisdiction(id);
}

export function registerDatasetCommands(program: Command, globals: () => GlobalOptions): void {
  const datasets = program.command('datasets').description('read the dataset catalog');
  datasets
    .command('list')
    .description('list curated datasets')
    .option('--jurisdiction <id>', 'only this jurisdiction')
    .option('--study <id>', 'only this study')
    .action(async (raw: Record<string, unknown>) => {
      const options = parseOptions(DatasetsListOptionsSchema, raw);
      const ctx = CommandContext.create(globals());
      try {
        const ids = options.jurisdiction ? [getJurisdiction(options.jurisdiction).id] : ctx.config.jurisdictions;
        const records = (await listDatasets(ctx, ids)).filter((r) => !options.study || r.studyId === options.study);
        if (ctx.json) printJson(records);
        else if (records.length === 0) say('no datasets');
        else {
          for (const r of records) {
            say(
              `${r.datasetId}  ${r.jurisdiction}  ${r.studyId}  ${r.dataClass}  rows ${r.rows.curated}/${r.rows.in}  ${r.createdAt}`,
            );
          }
        }
      } finally {
        await ctx.close();
      }
    });
  datasets
    .command('repseudonymize')
    .description("move a dataset to its study's current key version (steward role; needs the study's vault)")
    .argument('<datasetId>', 'dataset id')
    .action(async (datasetId: string) => {
      parseOptions(DatasetArgumentSchema, datasetId, 'dataset id');
      const jurisdiction = jurisdictionOfDataset(datasetId);
      const ctx = CommandContext.create(globals());
      try {
        // One migration of a dataset at a time: a second request while one runs waits for that one.
        const { handle } = await startOrAttach<typeof rePseudonymizeDatasetWorkflow>(
          await ctx.temporal(),
          'rePseudonymizeDatasetWorkflow',
          {
            args: [
              await ctx.sign({
                action: 'datasets.repseudonymize',
                jurisdiction: jurisdiction.id,
                params: { datasetId },
              }),
            ],
            taskQueue: ingestTaskQueue(jurisdiction.id),
            workflowId: rePseudonymizeWorkflowId(datasetId),
            workflowIdConflictPolicy: 'USE_EXISTING',
            typedSearchAttributes: [
              { key: SEARCH_ATTRIBUTES.jurisdiction, value: jurisdiction.id },
              { key: SEARCH_ATTRIBUTES.datasetId, value: datasetId },
              { key: SEARCH_ATTRIBUTES.requestKind, value: RequestKind.RePseudonymization },
            ],
          },
        );
        const result = await handle.result();
        if (ctx.json) printJson(result);
        else if (!result.migrated) say(`${datasetId} already uses key v${result.toVersion}`);
        else
          say(
            `${datasetId}: ${result.tablesMigrated} tables moved from key ${result.fromVersions.map((v) => `v${v}`).join(', ')} to v${result.toVersion}`,
          );
      } finally {
        await ctx.close();
      }
    });

  datasets
    .command('show')
    .description("show one dataset's catalog record: checksums, row counts, key versions, retention, lineage")
    .argument('<datasetId>', 'dataset id, e.g. ds-eu-0123456789abcdef01234567')
    .action(async (datasetId: string) => {
      const jurisdiction = jurisdictionOfDataset(datasetId);
      const ctx = CommandContext.create(globals());
      try {
        const record = await readDatasetRecord(ctx.s3(jurisdiction.id), jurisdiction.buckets.catalog, datasetId);
        if (!record)
          throw new UserError(`dataset ${datasetId} is not in the ${jurisdiction.id} catalog`, EXIT.notRunning);
        const study = await readStudyRecord(
          ctx.s3(jurisdiction.id),
          jurisdiction.buckets.catalog,
          jurisdiction.id,
          record.studyId,
        );
        if (ctx.json) printJson(record);
        else say(formatDataset(record, undefined, study));
      } finally {
        await ctx.close();
      }
    });
}
