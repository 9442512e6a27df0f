import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { getJurisdiction } from '../../jurisdictions';
import { preprocessJobWorkflowId, preprocessTaskQueue, progressQuery, RequestKind } from '../../contracts';
import { activityPollers } from '../../lib/client/pollers';
import { gpusToPoll } from '../../lib/preprocess/gpu';
import { bundledPipelines, loadParameters, loadPipeline } from '../../lib/preprocess/load-pipeline';
import { resolvePipeline } from '../../lib/preprocess/pipeline';
import { EXIT, UserError } from '../../lib/runtime/errors';
import { workerEntry } from '../../lib/stack/stack';
import { readRunDocument } from '../../lib/storage/catalog';
import {
  PreprocessJobArgumentSchema,
  PreprocessRunOptionsSchema,
  PreprocessVerifyOptionsSchema,
  WorkerOptionsSchema,
} from '../../schemas/cli';
import type { PreprocessJobResult, RunDocument } from '../../schemas/preprocess';
import type { preprocessJobWorkflow, verifyPreprocessRunWorkflow } from '../../workflows';
import { CommandContext, type GlobalOptions } from '../context';
import { parseOptions, requestIdOf } from '../options';
import { awaitWithProgress, note, printJson, say } from '../output';

const REQUEST_ID_HELP = 'resume the request an interrupted run started (it prints its request id)';

function jurisdictionOfJob(jobId: string): string {
  return getJurisdiction(/^preprocess-([a-z]{2,8})-/.exec(jobId)![1]!).id;
}

/** Says who polls the job's queue; nobody polling is said plainly instead of waiting in silence. */
async function announceQueue(ctx: CommandContext, jurisdiction: string, gpu: boolean): Promise<void> {
  const queue = preprocessTaskQueue(jurisdiction, gpu);
  const pollers = await activityPollers(await ctx.temporal(), queue);
  if (pollers.length > 0) {
    note(
      `task queue ${queue}: ${pollers.length} worker${pollers.length === 1 ? '' : 's'} polling (${pollers.join(', ')})`,
    );
    return;
  }
  note(
    `NOBODY POLLS ${queue}: the job waits there until a ${gpu ? 'GPU ' : ''}worker of ${jurisdiction} starts. Start one with\n` +
      `  steward worker --role preprocess --jurisdiction ${jurisdiction}${gpu ? ' --gpu   (on a machine with an NVIDIA GPU)' : ''}\n` +
      `or stop waiting with Ctrl-C (the job stays queued; \`steward preprocess cancel\` removes it).`,
  );
}

/** Shows a job's phase while waiting for its outcome (a run's and a verification's handles are alike). */
function follow(handle: WorkflowHandle<typeof preprocessJobWorkflow>): Promise<PreprocessJobResult> {
  return awaitWithProgress(handle, async () => `  ${(await handle.query(progressQuery)).phase}`);
}

function describeRun(doc: RunDocument): string {
  const lines = [
    `job ${doc.jobId} (${doc.jurisdiction}), ${doc.startedAt} → ${doc.finishedAt}`,
    `  requested by ${doc.requestedBy.id} (${doc.requestedBy.role}), request ${doc.requestId}`,
    `  pipeline ${doc.pipeline.name}@${doc.pipeline.version} (${doc.pipeline.executor}${doc.pipeline.gpu ? ', GPU' : ''}), code sha256 ${doc.pipeline.codeSha256}`,
    `  purpose ${doc.pipeline.purpose}; parameters ${JSON.stringify(doc.parameters)}; seed ${doc.seed}`,
    `  consent: ${doc.consent.subjects} subjects (${doc.consent.rows} rows) left out as of ${doc.consent.asOf}${
      Object.keys(doc.consent.byReason).length
        ? ` — ${Object.entries(doc.consent.byReason)
            .map(([r, n]) => `${r} ${n}`)
            .join(', ')}`
        : ''
    }`,
    '  inputs:',
    ...doc.inputs.map(
      (i) =>
        `    ${i.datasetId}/${i.table}  ${i.bucket}/${i.key} version ${i.versionId}  sha256 ${i.sha256}  rows ${i.rowsIn}`,
    ),
    '  outputs:',
    ...doc.outputs.map(
      (o) =>
        `    ${o.datasetId}/${o.table}  ${o.bucket}/${o.key} version ${o.versionId ?? '-'}  sha256 ${o.sha256}  rows ${o.rows}`,
    ),
    `  scratch wiped and verified at ${doc.scratch.verifiedAt} (${doc.scratch.files} files removed)`,
    `  worker ${doc.infrastructure.worker.identity} on ${doc.infrastructure.worker.taskQueue}`,
    ...(doc.infrastructure.baseline !== undefined
      ? [
          `  configuration baseline: ${doc.infrastructure.baseline ? `version ${doc.infrastructure.baseline.version} (${doc.infrastructure.baseline.sha256})` : 'none approved'}`,
        ]
      : []),
    `  Node ${doc.infrastructure.node}, Temporal SDK ${doc.infrastructure.temporalSdk}, server ${doc.infrastructure.temporalServer ?? 'unknown'}, versitygw ${doc.infrastructure.versitygw ?? 'unknown'}, DuckDB ${doc.infrastructure.duckdb}`,
  ];
  const gpu = doc.infrastructure.gpu;
  if (gpu) {
    lines.push(
      `  GPU driver ${gpu.driverVersion}, CUDA ${gpu.cudaVersion ?? 'unknown'}, confidential computing ${gpu.confidentialCompute ?? 'not reported'}`,
      ...gpu.gpus.map(
        (g) =>
          `    ${g.index}: ${g.model} ${g.memoryTotal ?? ''} ${g.uuid ?? ''} compute ${g.computeCapability ?? '?'}`,
      ),
    );
  }
  if (doc.infrastructure.containerImage) lines.push(`  container image ${doc.infrastructure.containerImage}`);
  return lines.join('\n');
}

export function registerPreprocessCommands(program: Command, globals: () => GlobalOptions): void {
  const preprocess = program
    .command('preprocess')
    .description(
      "preprocessing jobs, confined to their jurisdiction's workers and buckets, with GxP run documentation",
    );

  preprocess
    .command('run')
    .description('run a pipeline over datasets of one jurisdiction (steward role, e-signed); outputs are new datasets')
    .requiredOption('--jurisdiction <id>', 'the jurisdiction the job runs in: every dataset must be of it')
    .requiredOption('--dataset <ids...>', 'input datasets (one output dataset each)')
    .requiredOption(
      '--pipeline <ref>',
      'a bundled pipeline NAME@VERSION (see `steward preprocess pipelines`) or a JSON file',
    )
    .option('--params <file>', 'pipeline parameters, a JSON object (steps name them as "${name}")')
    .requiredOption('--seed <n>', 'seed, recorded in the run documentation and given to the pipeline')
    .option('--gpu', "run on the jurisdiction's GPU workers (preprocess-gpu.<jurisdiction>)")
    .option('--no-wait', 'start the job and return; `steward preprocess show` reads its documentation later')
    .option('--request-id <id>', REQUEST_ID_HELP)
    .action(async (raw: Record<string, unknown>) => {
      const options = parseOptions(PreprocessRunOptionsSchema, raw);
      const jurisdiction = getJurisdiction(options.jurisdiction).id;
      const parameters = await loadParameters(options.params);
      const pipeline = await loadPipeline(options.pipeline, parameters);
      const spec = resolvePipeline(pipeline.ref, pipeline.document, parameters);
      const gpu = options.gpu || spec.gpu;
      const ctx = CommandContext.create(globals());
      try {
        const requestId = requestIdOf(options.requestId);
        const handle = await ctx.startRequest<typeof preprocessJobWorkflow>('preprocessJobWorkflow', {
          workflowId: preprocessJobWorkflowId(jurisdiction, requestId),
          requestId,
          kind: RequestKind.Preprocess,
          action: 'preprocess.run',
          jurisdiction,
          ...(options.dataset.length === 1 ? { datasetId: options.dataset[0]! } : {}),
          params: { datasetIds: options.dataset, pipeline, parameters, seed: options.seed, gpu },
          meaning: `run pipeline ${spec.name}@${spec.version} on ${options.dataset.join(', ')}`,
        });
        // Machine output stays one JSON document: the job id goes to stderr then.
        (ctx.json ? note : say)(`job ${handle.workflowId}`);
        const url = ctx.uiUrl(handle.workflowId);
        if (url) note(`watch it in the Temporal UI: ${url}`);
        await announceQueue(ctx, jurisdiction, gpu);
        if (!options.wait) {
          if (ctx.json) printJson({ jobId: handle.workflowId });
          return;
        }
        const result = await follow(handle);
        if (ctx.json) printJson(result);
        else {
          say(describeRun(result.document));
          say(
            `run documentation ${result.documentRef!.bucket}/${result.documentRef!.key} (sha256 ${result.documentRef!.sha256})`,
          );
          say(`output datasets: ${result.outputDatasets.join(', ')}`);
        }
      } finally {
        await ctx.close();
      }
    });

  preprocess
    .command('show')
    .description("show a job's run documentation (inputs, pipeline, parameters, seed, outputs, infrastructure)")
    .argument('<job>', 'job id, as `preprocess run` printed it')
    .action(async (job: string) => {
      parseOptions(PreprocessJobArgumentSchema, job, 'job id');
      const jurisdiction = getJurisdiction(jurisdictionOfJob(job));
      const ctx = CommandContext.create(globals());
      try {
        const doc = await readRunDocument(ctx.s3(jurisdiction.id), jurisdiction.buckets.curated, job);
        if (!doc) {
          throw new UserError(
            `no run documentation for ${job}: the job has not finished (see \`temporal workflow describe -w ${job}\`) or did not succeed`,
            EXIT.notRunning,
          );
        }
        if (ctx.json) printJson(doc);
        else say(describeRun(doc));
      } finally {
        await ctx.close();
      }
    });

  preprocess
    .command('verify')
    .description(
      're-run a job from its run documentation and compare output checksums field by field (GxP process validation)',
    )
    .argument('<job>', 'job id')
    .option('--params <file>', 'other parameters for the re-run (the comparison then shows what they change)')
    .option('--request-id <id>', REQUEST_ID_HELP)
    .action(async (job: string, raw: Record<string, unknown>) => {
      parseOptions(PreprocessJobArgumentSchema, job, 'job id');
      const options = parseOptions(PreprocessVerifyOptionsSchema, raw);
      const jurisdiction = jurisdictionOfJob(job);
      const parameters = options.params ? await loadParameters(options.params) : undefined;
      const ctx = CommandContext.create(globals());
      try {
        const requestId = requestIdOf(options.requestId);
        const handle = await ctx.startRequest<typeof verifyPreprocessRunWorkflow>('verifyPreprocessRunWorkflow', {
          workflowId: preprocessJobWorkflowId(jurisdiction, `verify-${requestId}`),
          requestId,
          kind: RequestKind.PreprocessVerify,
          action: 'preprocess.verify',
          jurisdiction,
          params: { runWorkflowId: job, ...(parameters ? { parameters } : {}) },
          meaning: `re-run preprocessing job ${job} to verify its outputs`,
        });
        const result = await follow(handle);
        const v = result.verification!;
        if (ctx.json) printJson(result);
        else {
          say(v.reproduced ? `REPRODUCED: ${job} — every output has its recorded SHA-256` : `NOT REPRODUCED: ${job}`);
          for (const d of v.differences) {
            say(`  ${d.field}: recorded ${JSON.stringify(d.recorded)}, re-run ${JSON.stringify(d.rerun)}`);
          }
        }
        if (!v.reproduced) process.exitCode = EXIT.verificationFailed;
      } finally {
        await ctx.close();
      }
    });

  preprocess
    .command('cancel')
    .description('cancel a running job: its pipeline is stopped and its scratch wiped (the Temporal UI can cancel too)')
    .argument('<job>', 'job id')
    .action(async (job: string) => {
      parseOptions(PreprocessJobArgumentSchema, job, 'job id');
      const ctx = CommandContext.create(globals());
      try {
        const handle = (await ctx.temporal()).workflow.getHandle(job);
        await handle.cancel();
        try {
          await handle.result();
          say(`${job} had already finished`);
        } catch (error) {
          if (!(error instanceof WorkflowFailedError)) throw error;
          say(`${job} cancelled; nothing of it is left in any worker's scratch`);
        }
      } finally {
        await ctx.close();
      }
    });

  preprocess
    .command('pipelines')
    .description('list the bundled pipelines (NAME@VERSION)')
    .action(async () => {
      const found = await bundledPipelines();
      if (globals().json) printJson(found);
      else say(found.join('\n'));
    });
}

export function registerWorkerCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command('worker')
    .description("run a worker of one jurisdiction with that jurisdiction's storage credentials (until Ctrl-C)")
    .requiredOption(
      '--role <role>',
      'preprocess: poll preprocess.<jurisdiction> (or preprocess-gpu.<jurisdiction> with --gpu)',
    )
    .requiredOption('--jurisdiction <id>', 'the jurisdiction it serves; it touches no other')
    .option('--gpu', 'poll the GPU queue; refuses to start where nvidia-smi finds no GPU')
    .action(async (raw: Record<string, unknown>) => {
      const options = parseOptions(WorkerOptionsSchema, raw);
      const jurisdiction = getJurisdiction(options.jurisdiction).id;
      if (options.gpu) {
        try {
          const inventory = await gpusToPoll(preprocessTaskQueue(jurisdiction, true));
          note(
            `GPUs: ${inventory.gpus.map((g) => `${g.model} (${g.uuid ?? g.index})`).join(', ')}; driver ${inventory.driverVersion}`,
          );
        } catch (error) {
          throw new UserError(
            `${(error as Error).message}. Start GPU workers on a machine with an NVIDIA GPU and driver; CPU pipelines run on \`steward worker --role preprocess --jurisdiction ${jurisdiction}\`.`,
            EXIT.notRunning,
          );
        }
      }
      // The worker reads the deployment as this command does: the data dir's stack, or STEWARD_* settings. Without
      // one, reading its Temporal endpoint fails here, saying what to do, instead of in the worker.
      const { config } = CommandContext.create(globals());
      void config.temporal;
      const { command, args } = workerEntry();
      const child = spawn(command, args, {
        stdio: 'inherit',
        env: {
          ...process.env,
          STEWARD_DATA_DIR: config.dataDir,
          STEWARD_JURISDICTION: jurisdiction,
          STEWARD_WORKER_ROLE: options.role,
          ...(options.gpu ? { STEWARD_GPU: '1' } : {}),
        },
      });
      const forward = (signal: NodeJS.Signals) => child.kill(signal);
      process.on('SIGINT', forward);
      process.on('SIGTERM', forward);
      process.exitCode = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
    });
}
