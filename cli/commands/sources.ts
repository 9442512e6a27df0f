import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import { RequestKind, sourceRegistrationWorkflowId } from '../../contracts';
import { getJurisdiction } from '../../jurisdictions';
import { readLocalPackage } from '../../lib/package/local';
import { signatureFileOf, signedFileOf } from '../../lib/package/source';
import { signDetached } from '../../lib/pki/cms';
import { UserError } from '../../lib/runtime/errors';
import { readSourceRegistry } from '../../lib/storage/catalog';
import { RequestIdSchema, StudyOptionsSchema } from '../../schemas/cli';
import type { registerSourceWorkflow } from '../../workflows';
import { CommandContext, type GlobalOptions } from '../context';
import { parseOptions, requestIdOf } from '../options';
import { printJson, say } from '../output';

const RegisterOptionsSchema = StudyOptionsSchema.extend({
  name: z.string().trim().min(1).max(120),
  certificate: z.string().min(1),
  require: z.boolean().default(false),
  requestId: RequestIdSchema.optional(),
});
const SignOptionsSchema = z.object({ certificate: z.string().min(1), key: z.string().min(1) });

async function readText(file: string, what: string): Promise<string> {
  return readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new UserError(`${file}: cannot read the ${what} (${error.code ?? 'unreadable'})`);
  });
}

export function registerSourceCommands(program: Command, globals: () => GlobalOptions): void {
  const sources = program
    .command('sources')
    .description("source systems whose signatures authenticate a study's packages (EDC, lab)");
  sources
    .command('register')
    .description('register a source system certificate for a study (steward, e-signed, audited)')
    .requiredOption('--jurisdiction <id>', 'jurisdiction')
    .requiredOption('--study <id>', 'study id')
    .requiredOption('--name <name>', 'the source system, as records name it (e.g. "Site 12 EDC")')
    .requiredOption('--certificate <file>', "the source's X.509 certificate (PEM)")
    .option('--require', 'from now on, reject packages of the study that no registered source signed')
    .option('--request-id <id>', 'resume the request an interrupted run started (it prints its request id)')
    .action(async (raw: Record<string, unknown>) => {
      const options = parseOptions(RegisterOptionsSchema, raw);
      getJurisdiction(options.jurisdiction);
      const certificatePem = await readText(options.certificate, 'certificate');
      if (!certificatePem.startsWith('-----BEGIN CERTIFICATE-----')) {
        throw new UserError(`${options.certificate}: not a PEM certificate (expected -----BEGIN CERTIFICATE-----)`);
      }
      const ctx = CommandContext.create(globals());
      try {
        const requestId = requestIdOf(options.requestId);
        const handle = await ctx.startRequest<typeof registerSourceWorkflow>('registerSourceWorkflow', {
          workflowId: sourceRegistrationWorkflowId(options.jurisdiction, options.study, requestId),
          requestId,
          kind: RequestKind.SourceRegistration,
          action: 'sources.register',
          jurisdiction: options.jurisdiction,
          studyId: options.study,
          params: { studyId: options.study, name: options.name, certificatePem, required: options.require },
          meaning: 'register a source system for the study',
        });
        const result = await handle.result();
        if (ctx.json) printJson(result);
        else {
          say(
            `Source "${result.name}" registered for ${result.studyId} (${result.jurisdiction}), ${result.fingerprint}`,
          );
          say(
            `  ${result.sources} source(s); ${result.required ? 'packages must be signed by one of them' : 'signatures are checked when present'}`,
          );
        }
      } finally {
        await ctx.close();
      }
    });
  sources
    .command('list')
    .description("a study's registered sources (read from the jurisdiction's catalog)")
    .requiredOption('--jurisdiction <id>', 'jurisdiction')
    .requiredOption('--study <id>', 'study id')
    .action(async (raw: Record<string, unknown>) => {
      const options = parseOptions(StudyOptionsSchema, raw);
      const jurisdiction = getJurisdiction(options.jurisdiction);
      const ctx = CommandContext.create(globals());
      try {
        const registry = await readSourceRegistry(ctx.s3(jurisdiction.id), jurisdiction.buckets.catalog, options.study);
        const listed = (registry?.sources ?? []).map(({ certificatePem: _pem, ...s }) => s);
        if (ctx.json) printJson({ studyId: options.study, required: registry?.required ?? false, sources: listed });
        else {
          say(
            `${options.study} (${jurisdiction.id}): ${registry?.required ? 'signatures required' : 'signatures optional'}`,
          );
          for (const s of listed)
            say(`  ${s.name}  ${s.fingerprint}  registered ${s.registeredAt} by ${s.registeredBy.printedName}`);
        }
      } finally {
        await ctx.close();
      }
    });
  sources
    .command('sign')
    .description("sign a package's manifest as its source system (what `openssl cms -sign` does as well)")
    .argument('<package>', 'a BagIt bag or a directory with manifest.json')
    .requiredOption('--certificate <file>', "the source's certificate (PEM)")
    .requiredOption('--key <file>', "the source's private key (PEM, unencrypted)")
    .addHelpText(
      'after',
      '\nThe same signature with OpenSSL (a bag signs tagmanifest-sha256.txt, a JSON package manifest.json):\n' +
        '  openssl cms -sign -binary -md sha256 -in manifest.json -signer source.pem -inkey source.key \\\n' +
        '    -outform DER -out manifest.json.p7s',
    )
    .action(async (dir: string, raw: Record<string, unknown>) => {
      const options = parseOptions(SignOptionsSchema, raw);
      const { layout } = await readLocalPackage(dir);
      const signed = path.join(dir, signedFileOf(layout));
      const content = await readFile(signed).catch(() => {
        throw new UserError(`${signed}: missing (a bag is signed through its tag manifest, which lists its tag files)`);
      });
      const signature = signDetached(
        content,
        {
          certificatePem: await readText(options.certificate, 'certificate'),
          privateKeyPem: await readText(options.key, 'private key'),
        },
        [],
      );
      const out = path.join(dir, signatureFileOf(layout));
      await writeFile(out, signature);
      say(`signed ${signedFileOf(layout)}: ${out}`);
    });
}
