import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { read } from 'read';
import { z } from 'zod';
import { RoleSchema } from '../../schemas/common';
import { FileKeyStore } from '../../lib/crypto/keystore';
import { StewardAuthority } from '../../lib/pki/authority';
import { openIdentity, passphraseFor, writeIdentity } from '../../lib/pki/identity';
import { certificateInfo } from '../../lib/pki/x509';
import { UserError } from '../../lib/runtime/errors';
import { CommandContext, type GlobalOptions } from '../context';
import { parseOptions } from '../options';
import { note, printJson, say } from '../output';

const IssueOptionsSchema = z.object({
  name: z
    .string()
    .regex(/^[\p{L}\p{M}\p{N} .'@_-]{1,128}$/u, "must be a printed name of letters, digits, spaces and . ' @ _ -"),
  role: RoleSchema.exclude(['worker']),
  out: z.string().min(1),
  days: z.coerce.number().int().min(1).max(3650).default(365),
});

/** The shortest passphrase a new identity's key may be encrypted with, however it is given. */
const MIN_PASSPHRASE_LENGTH = 12;

/** A new identity's passphrase: `STEWARD_PASSPHRASE`, else typed twice on the terminal; either way of 12 or more. */
async function newPassphrase(): Promise<string> {
  const fromEnv = process.env.STEWARD_PASSPHRASE;
  if (fromEnv) {
    if (fromEnv.length < MIN_PASSPHRASE_LENGTH) {
      throw new UserError(`STEWARD_PASSPHRASE: the passphrase must have at least ${MIN_PASSPHRASE_LENGTH} characters`);
    }
    return fromEnv;
  }
  if (!process.stdin.isTTY) throw new UserError('set STEWARD_PASSPHRASE, or run on a terminal to type the passphrase');
  const first = await read({ prompt: 'passphrase for the new key: ', silent: true, replace: '*' });
  const second = await read({ prompt: 'the same passphrase again: ', silent: true, replace: '*' });
  if (first !== second) throw new UserError('the two passphrases differ');
  if (first.length < MIN_PASSPHRASE_LENGTH) {
    throw new UserError(`the passphrase must have at least ${MIN_PASSPHRASE_LENGTH} characters`);
  }
  return first;
}

/** Who administers the CA: whoever holds the key store's master key on this machine. */
function administrator() {
  return { id: `key store administrator ${os.userInfo().username}`.slice(0, 128), role: 'ops' as const };
}

async function openAuthority(ctx: CommandContext): Promise<StewardAuthority> {
  const keys = await FileKeyStore.open(path.join(ctx.config.dataDir, 'keys'), ctx.config.masterKey);
  return StewardAuthority.open(ctx.config.pkiDir, keys);
}

/** Records an identity event in every jurisdiction's trail: an identity can act in any of them. */
async function auditEverywhere(
  ctx: CommandContext,
  action: 'identity.issued' | 'identity.revoked',
  details: Record<string, string>,
  reason?: string,
) {
  for (const jurisdiction of ctx.config.jurisdictions) {
    await ctx.appendAudit(jurisdiction, [
      { principal: administrator(), action, outcome: 'success', details, ...(reason ? { reason } : {}) },
    ]);
  }
}

export function registerIdentityCommands(program: Command, globals: () => GlobalOptions): void {
  const identity = program
    .command('identity')
    .description('identities of people: X.509 certificates from the Steward CA, keys under a passphrase');
  identity
    .command('issue')
    .description('issue an identity: certificate (role in it) and a private key encrypted with a passphrase')
    .requiredOption('--name <name>', 'printed name, as shown on e-signatures')
    .requiredOption('--role <role>', 'steward, dpo, ops, auditor or qa')
    .requiredOption('--out <dir>', 'directory to write certificate.pem, private-key.pem and ca.pem to')
    .option('--days <n>', 'validity in days', '365')
    .addHelpText(
      'after',
      '\nThe passphrase comes from STEWARD_PASSPHRASE, or is typed twice. Key file and passphrase are the two\n' +
        'identification components of 21 CFR 11.200(a): keep them apart. Needs the key store (master key).',
    )
    .action(async (raw: Record<string, unknown>) => {
      const options = parseOptions(IssueOptionsSchema, raw);
      const ctx = CommandContext.create(globals());
      try {
        // The passphrase first: a refused one leaves nothing issued.
        const passphrase = await newPassphrase();
        const authority = await openAuthority(ctx);
        const issued = await authority.issue(options.name, options.role, options.days);
        await writeIdentity(path.resolve(options.out), { ...issued, caPem: authority.caPem() }, passphrase);
        await auditEverywhere(ctx, 'identity.issued', {
          name: issued.info.name,
          role: issued.info.role,
          serial: issued.info.serial,
          notAfter: issued.info.notAfter.toISOString(),
        });
        if (ctx.json) printJson({ ...issued.info, dir: path.resolve(options.out), privateKeyPem: undefined });
        else {
          say(
            `Issued ${issued.info.name} (${issued.info.role}), certificate ${issued.info.serial}, valid until ${issued.info.notAfter.toISOString()}`,
          );
          say(`  ${path.resolve(options.out)}: certificate.pem, private-key.pem (encrypted), ca.pem`);
        }
      } finally {
        await ctx.close();
      }
    });
  identity
    .command('revoke')
    .description('revoke an identity and publish a new CRL; workflows refuse its requests from then on')
    .argument('<serial-or-dir>', 'certificate serial (hex), or an identity directory')
    .requiredOption('--reason <text>', 'why (recorded in the audit trail)')
    .action(async (target: string, raw: { reason: string }) => {
      const ctx = CommandContext.create(globals());
      try {
        const serial = /^[0-9a-fA-F]+$/.test(target)
          ? target.toLowerCase()
          : certificateInfo(readFileSync(path.join(target, 'certificate.pem'), 'utf8')).serial;
        const authority = await openAuthority(ctx);
        const revoked = await authority.revoke(serial, raw.reason, new Date());
        await auditEverywhere(ctx, 'identity.revoked', { name: revoked.name, role: revoked.role, serial }, raw.reason);
        if (ctx.json) printJson(revoked);
        else
          say(
            `Revoked ${revoked.name} (${revoked.role}), certificate ${serial}; CRL published at ${authority.crlFile}`,
          );
      } finally {
        await ctx.close();
      }
    });
  identity
    .command('list')
    .description('list the identities the Steward CA issued')
    .action(async () => {
      const ctx = CommandContext.create(globals());
      const authority = await openAuthority(ctx);
      const issued = await authority.issued();
      if (ctx.json) printJson(issued);
      else {
        for (const r of issued) {
          say(
            `${r.serial}  ${r.role.padEnd(8)} ${r.name.padEnd(32)} until ${r.notAfter.slice(0, 10)}${r.revokedAt ? `  REVOKED ${r.revokedAt} (${r.revocationReason})` : ''}`,
          );
        }
      }
    });
  identity
    .command('show')
    .description('show who the current identity is (after asking for its passphrase)')
    .action(async () => {
      const ctx = CommandContext.create(globals());
      const opened = openIdentity(ctx.config.identityDir, await passphraseFor(ctx.config.identityDir));
      note(`identity ${opened.dir}`);
      if (ctx.json) printJson(opened.info);
      else
        say(
          `${opened.info.name} (${opened.info.role}), certificate ${opened.info.serial}, valid until ${opened.info.notAfter.toISOString()}`,
        );
    });
}
