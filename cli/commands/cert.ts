import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { getJurisdiction } from '../../jurisdictions';
import { readSegment } from '../../lib/audit/store';
import {
  auditReferenceProblem,
  checkCertificate,
  jurisdictionOfCertificateId,
  readCertificateFiles,
  renderCertificate,
} from '../../lib/evidence/certificate';
import { EXIT, UserError } from '../../lib/runtime/errors';
import { CommandContext, type GlobalOptions } from '../context';
import { printJson, say } from '../output';

/** A certificate's JSON and signature: from files (`X.json` and `X.p7s`), or by id from its evidence bucket. */
async function loadCertificate(
  ctx: CommandContext,
  target: string,
): Promise<{ json: Buffer; p7s: Buffer; source: string }> {
  if (existsSync(target)) {
    const p7sFile = target.replace(/\.json$/, '') + '.p7s';
    if (!existsSync(p7sFile)) throw new UserError(`${target}: its signature ${p7sFile} is missing`);
    return { json: readFileSync(target), p7s: readFileSync(p7sFile), source: target };
  }
  const jurisdiction = jurisdictionOfCertificateId(target);
  if (!jurisdiction)
    throw new UserError(`"${target}" is neither a file nor a certificate id (cert-<jurisdiction>-<32 hex digits>)`);
  const bucket = getJurisdiction(jurisdiction).buckets.evidence;
  const found = await readCertificateFiles(ctx.s3(jurisdiction), bucket, target);
  if (!found) throw new UserError(`certificate ${target} is not in ${bucket}`, EXIT.notRunning);
  return found;
}

export function registerCertCommands(program: Command, globals: () => GlobalOptions): void {
  const cert = program
    .command('cert')
    .description('deletion certificates (signed, CMS detached; OpenSSL verifies them)');
  cert
    .command('verify')
    .description(
      'check a certificate: signature over its exact bytes, chain to the Steward CA, schema, audit-trail entry',
    )
    .argument('<file-or-id>', 'a certificate JSON file (its .p7s beside it), or a certificate id')
    .option('--ca <file>', 'the Steward CA certificate (default: the PKI directory’s)')
    .action(async (target: string, options: { ca?: string }) => {
      const ctx = CommandContext.create(globals());
      try {
        const caFile = options.ca ?? path.join(ctx.config.pkiDir, 'ca.pem');
        if (!existsSync(caFile)) throw new UserError(`no CA certificate at ${caFile}: give --ca <file>`);
        const { json, p7s, source } = await loadCertificate(ctx, target);
        const { certificate, problems } = checkCertificate(json, p7s, readFileSync(caFile, 'utf8'));
        let audit = 'not checked (no access to the evidence bucket)';
        if (certificate) {
          try {
            const ref = certificate.auditChain;
            const segment = await readSegment(
              ctx.s3(ref.jurisdiction),
              getJurisdiction(ref.jurisdiction).buckets.evidence,
              ref.segment,
            );
            const problem = auditReferenceProblem(certificate, segment);
            if (problem) problems.push(`audit trail: ${problem}`);
            audit = problem ? 'FAILED' : `event at position ${ref.position} found in segment ${ref.segment}`;
          } catch (error) {
            if (!(error instanceof UserError)) throw error;
          }
        }
        if (ctx.json)
          printJson({
            valid: problems.length === 0,
            source,
            certificateId: certificate?.certificateId,
            problems,
            audit,
          });
        else if (problems.length === 0) {
          say(`certificate ${certificate!.certificateId} verifies (${source})`);
          say(`  signature: valid, by ${certificate!.issuer.name}, chained to the Steward CA`);
          say(`  audit trail: ${audit}`);
          const baseline = certificate!.baseline;
          if (baseline !== undefined) {
            say(
              `  configuration baseline: ${baseline ? `version ${baseline.version} (${baseline.sha256})` : 'none approved'}`,
            );
          }
        } else {
          say(`certificate does not verify (${source}):`);
          for (const p of problems) say(`  ${p}`);
        }
        if (problems.length > 0) process.exitCode = EXIT.verificationFailed;
      } finally {
        await ctx.close();
      }
    });
  cert
    .command('show')
    .description('print a certificate as a readable document; with --out, write its JSON, .p7s and the CA certificate')
    .argument('<id>', 'certificate id')
    .option('--out <dir>', 'directory for cert.json, cert.p7s and ca.pem (what a third party needs to check it)')
    .action(async (id: string, options: { out?: string }) => {
      const ctx = CommandContext.create(globals());
      try {
        const { json, p7s } = await loadCertificate(ctx, id);
        const { certificate, problems } = checkCertificate(
          json,
          p7s,
          readFileSync(path.join(ctx.config.pkiDir, 'ca.pem'), 'utf8'),
        );
        if (!certificate) throw new UserError(`certificate ${id} cannot be read: ${problems.join('; ')}`);
        if (options.out) {
          await mkdir(options.out, { recursive: true });
          await writeFile(path.join(options.out, 'cert.json'), json);
          await writeFile(path.join(options.out, 'cert.p7s'), p7s);
          await writeFile(path.join(options.out, 'ca.pem'), readFileSync(path.join(ctx.config.pkiDir, 'ca.pem')));
        }
        if (ctx.json) printJson(certificate);
        else {
          process.stdout.write(renderCertificate(certificate));
          if (problems.length) say(`\nWARNING: ${problems.join('; ')}`);
          if (options.out) {
            say(`\nwritten to ${path.resolve(options.out)}; anyone can check it with OpenSSL alone:`);
            say(
              `  openssl cms -verify -binary -inform DER -in cert.p7s -content cert.json -CAfile ca.pem -purpose any -out /dev/null`,
            );
          }
        }
      } finally {
        await ctx.close();
      }
    });
}
