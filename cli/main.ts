import { Command, CommanderError } from 'commander';
import { ApplicationFailure, TemporalFailure, WorkflowFailedError } from '@temporalio/client';
import { UnknownJurisdictionError } from '../jurisdictions';
import type { PackageProblem } from '../schemas/ingest';
import { EXIT, UserError } from '../lib/runtime/errors';
import { LocalPackageRejected } from '../lib/package/local';
import { describeProblem } from '../lib/package/rules';
import { ErrorType } from '../contracts';
import type { GlobalOptions } from './context';
import { registerAuditCommands } from './commands/audit';
import { registerCertCommands } from './commands/cert';
import { registerConsentCommands } from './commands/consent';
import { registerDsrCommands } from './commands/dsr';
import { registerIdentityCommands } from './commands/identity';
import { registerDatasetCommands } from './commands/datasets';
import { registerDemoCommands } from './commands/demo';
import { registerIngestCommand } from './commands/ingest';
import { registerKeyCommands, registerReidentifyCommand } from './commands/keys';
import { registerStackCommands } from './commands/stack';
import { registerWorkerCommands } from './commands/workers';
import { registerDrCommands } from './commands/dr';
import { registerRetentionCommands } from './commands/retention';
import { registerCodecCommands } from './commands/codec';
import { registerSourceCommands } from './commands/sources';
import { registerQualifyCommands } from './commands/qualify';
import { registerChangeCommands } from './commands/change';
import { registerDeviationCommands } from './commands/deviations';
import { registerPreprocessCommands, registerWorkerCommand } from './commands/preprocess';

function rootFailure(error: WorkflowFailedError): TemporalFailure | undefined {
  let cause: unknown = error.cause;
  while (cause instanceof TemporalFailure && cause.cause instanceof TemporalFailure) cause = cause.cause;
  return cause instanceof TemporalFailure ? cause : undefined;
}

function listProblems(problems: PackageProblem[]): void {
  for (const p of problems.slice(0, 20)) process.stderr.write(`  ${describeProblem(p)}\n`);
  if (problems.length > 20) process.stderr.write(`  … and ${problems.length - 20} more\n`);
}

function report(error: unknown): number {
  if (error instanceof CommanderError) return error.exitCode;
  if (error instanceof LocalPackageRejected) {
    process.stderr.write(`steward: ${error.message}\n`);
    listProblems(error.problems);
    return error.exitCode;
  }
  if (error instanceof UserError) {
    process.stderr.write(`steward: ${error.message}\n`);
    return error.exitCode;
  }
  if (error instanceof UnknownJurisdictionError) {
    process.stderr.write(`steward: ${error.message}\n`);
    return EXIT.usage;
  }
  if (error instanceof WorkflowFailedError) {
    const root = rootFailure(error);
    if (
      root instanceof ApplicationFailure &&
      (root.type === ErrorType.PackageRejected || root.type === ErrorType.ConsentImportRejected)
    ) {
      const problems = (root.details?.[0] as { problems?: PackageProblem[] } | undefined)?.problems ?? [];
      process.stderr.write(
        `steward: ${root.type === ErrorType.PackageRejected ? 'package rejected and moved to quarantine' : 'consent import rejected'}; nothing was curated\n`,
      );
      listProblems(problems);
      return EXIT.rejected;
    }
    if (
      root instanceof ApplicationFailure &&
      (root.type === ErrorType.JurisdictionViolation || root.type === ErrorType.StorageDenied)
    ) {
      process.stderr.write(`steward: refused: ${root.message}\n`);
      return EXIT.denied;
    }
    if (root instanceof ApplicationFailure && root.type === ErrorType.PreprocessFailed) {
      process.stderr.write(`steward: the pipeline failed: ${root.message}\n`);
      return EXIT.failure;
    }
    if (root instanceof ApplicationFailure && root.type === ErrorType.AccessDenied) {
      process.stderr.write(`steward: ${root.message}\n`);
      return EXIT.denied;
    }
    if (
      root instanceof ApplicationFailure &&
      (root.type === ErrorType.RetentionConflict ||
        root.type === ErrorType.InvalidInput ||
        root.type === ErrorType.DatasetNotFound)
    ) {
      process.stderr.write(`steward: ${root.message.replace(/^catalog change failed: /, '')}\n`);
      return root.type === ErrorType.DatasetNotFound ? EXIT.notRunning : EXIT.usage;
    }
    process.stderr.write(
      `steward: workflow ${error.message}: ${root?.message ?? error.cause?.message ?? 'unknown failure'}\n`,
    );
    return EXIT.failure;
  }
  const e = error as Error;
  process.stderr.write(`steward: ${e?.message ?? String(error)}\n`);
  if (process.env.STEWARD_DEBUG) process.stderr.write(`${e?.stack}\n`);
  return EXIT.failure;
}

export function buildProgram(): Command {
  const program = new Command('steward')
    .description('Compliant data lifecycle pipeline for regulated clinical data')
    .option('--data-dir <dir>', 'embedded stack data directory (default: $STEWARD_DATA_DIR or ./.steward)')
    .option('--json', 'machine-readable output on stdout')
    .option(
      '--identity <dir>',
      "sign requests with this identity (certificate + encrypted key); default $STEWARD_IDENTITY, else the data dir's demo steward",
    )
    .showHelpAfterError()
    .exitOverride();
  const globals = () => program.opts<GlobalOptions>();
  registerStackCommands(program, globals);
  registerWorkerCommands(program, globals);
  registerDrCommands(program, globals);
  registerIngestCommand(program, globals);
  registerConsentCommands(program, globals);
  registerDsrCommands(program, globals);
  registerDatasetCommands(program, globals);
  registerKeyCommands(program, globals);
  registerReidentifyCommand(program, globals);
  registerIdentityCommands(program, globals);
  registerAuditCommands(program, globals);
  registerCertCommands(program, globals);
  registerRetentionCommands(program, globals);
  registerCodecCommands(program, globals);
  registerPreprocessCommands(program, globals);
  registerSourceCommands(program, globals);
  registerQualifyCommands(program, globals);
  registerDeviationCommands(program, globals);
  registerChangeCommands(program, globals);
  registerWorkerCommand(program, globals);
  registerDemoCommands(program, globals);
  const override = (command: Command): void => {
    command.exitOverride();
    command.commands.forEach(override);
  };
  override(program);
  return program;
}

export async function main(): Promise<void> {
  // A reader that stops early (`steward audit query … | head`) closes the pipe: nothing more is wanted, so the command
  // ends quietly instead of crashing on the failed write.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(0);
  });
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (error) {
    process.exitCode = report(error);
  }
}

if (require.main === module) void main();
