import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import { getJurisdiction } from '../../jurisdictions';
import { allowed } from '../../lib/auth/roles';
import { grantEvent, issueCodecGrant } from '../../lib/codec/grant';
import { startCodecServer, writeCodecGrant } from '../../lib/codec/embedded';
import { locatePayloads } from '../../lib/codec/locate';
import { FileKeyStore } from '../../lib/crypto/keystore';
import { EXIT, UserError } from '../../lib/runtime/errors';
import { JurisdictionIdSchema } from '../../schemas/jurisdiction';
import { CommandContext, type GlobalOptions } from '../context';
import { parseOptions } from '../options';
import { note, printJson, say } from '../output';

const ListenSchema = z
  .string()
  .regex(/^[^\s:]+:\d{1,5}$/, 'must be host:port, e.g. 127.0.0.1:8888')
  .transform((v) => ({ host: v.slice(0, v.lastIndexOf(':')), port: Number(v.slice(v.lastIndexOf(':') + 1)) }));

const CodecServerOptionsSchema = z
  .object({
    listen: ListenSchema,
    uiOrigin: z.array(z.url({ message: 'must be an origin such as https://temporal.example.com' })).default([]),
    tlsCert: z.string().optional(),
    tlsKey: z.string().optional(),
    clientCertificates: z.boolean().default(false),
    auditJurisdiction: JurisdictionIdSchema.optional(),
    grantsDir: z.string().optional(),
  })
  .refine((o) => (o.tlsCert === undefined) === (o.tlsKey === undefined), {
    message: '--tls-cert and --tls-key go together',
    path: ['tlsCert'],
  })
  .refine((o) => o.tlsCert !== undefined || ['127.0.0.1', 'localhost', '::1'].includes(o.listen.host), {
    message: 'off loopback the codec server needs TLS: give --tls-cert and --tls-key',
    path: ['listen'],
  })
  .refine((o) => !o.clientCertificates || o.tlsCert !== undefined, {
    message: 'client certificates need TLS: give --tls-cert and --tls-key',
    path: ['clientCertificates'],
  });

const LocateSchema = z.object({
  digests: z
    .array(z.string().regex(/^[0-9a-f]{16}$/, 'a digest is 16 hex digits, as in a payloads.decoded event'))
    .min(1),
  query: z.string().optional(),
  limit: z.coerce.number().int().positive().default(10_000),
});

const GrantOptionsSchema = z.object({
  hours: z.coerce.number().positive().max(720).default(12),
  jurisdiction: JurisdictionIdSchema.optional(),
});

export function registerCodecCommands(program: Command, globals: () => GlobalOptions): void {
  program
    .command('codec-server')
    .description(
      'serve the Temporal remote codec protocol for the Web UI and `temporal` CLI (ops and auditor only; audited)',
    )
    .option('--listen <host:port>', 'address to listen on (off loopback only with TLS)', '127.0.0.1:8888')
    .option('--ui-origin <url...>', 'Web UI origin(s) allowed by CORS, e.g. https://temporal.example.com')
    .option('--tls-cert <file>', 'serve HTTPS with this certificate (PEM)')
    .option('--tls-key <file>', 'and this key (PEM)')
    .option('--client-certificates', 'also accept a client certificate issued by the Steward CA as identity (mTLS)')
    .option('--audit-jurisdiction <id>', "whose audit trail records the accesses (default: the configuration's first)")
    .option('--grants-dir <dir>', 'grants the UI may name in its URL (default <data dir>/codec/grants)')
    .addHelpText(
      'after',
      '\nEvery request must identify an ops or auditor identity: a grant named in the URL (…/grant/<id>/decode, made\n' +
        'with `steward codec grant`), a grant as `Authorization: Bearer <token>`, or (with --client-certificates) the\n' +
        "identity's certificate and key as TLS client certificate. Each decode, allowed or refused, is an audit event.",
    )
    .action(async (raw: Record<string, unknown>) => {
      const options = parseOptions(CodecServerOptionsSchema, raw);
      const ctx = CommandContext.create(globals());
      const jurisdiction = options.auditJurisdiction ?? ctx.config.jurisdictions[0]!;
      getJurisdiction(jurisdiction);
      const keys = await FileKeyStore.open(path.join(ctx.config.dataDir, 'keys'), ctx.config.masterKey);
      const server = await startCodecServer({
        keys,
        pkiDir: ctx.config.pkiDir,
        jurisdiction,
        auditJurisdictions: [...new Set([jurisdiction, ...ctx.config.jurisdictions])],
        uiOrigins: options.uiOrigin,
        grantsDir: options.grantsDir ?? path.join(ctx.config.dataDir, 'codec', 'grants'),
        temporal: ctx.config.temporal,
        host: options.listen.host,
        port: options.listen.port,
        ...(options.tlsCert && options.tlsKey
          ? {
              tls: {
                cert: readFileSync(options.tlsCert, 'utf8'),
                key: readFileSync(options.tlsKey, 'utf8'),
                requestClientCertificate: options.clientCertificates,
              },
            }
          : {}),
      });
      const scheme = options.tlsCert ? 'https' : 'http';
      say(
        `codec server on ${scheme}://${options.listen.host}:${server.port} (grants of ${jurisdiction}; accesses audited in ${[...new Set([jurisdiction, ...ctx.config.jurisdictions])].join(', ')})`,
      );
      note(`allowed UI origins: ${options.uiOrigin.length > 0 ? options.uiOrigin.join(', ') : 'none'}`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await server.close();
      await ctx.close();
    });

  const codec = program.command('codec').description('access to workflow payloads in the clear (see codec-server)');
  codec
    .command('grant')
    .description('sign a codec grant with your identity (ops or auditor): a URL for the Web UI and a bearer token')
    .option('--hours <n>', 'how long it lasts (at most 720)', '12')
    .option('--jurisdiction <id>', "the audit trail's jurisdiction (default: the configuration's first)")
    .action(async (raw: Record<string, unknown>) => {
      const options = parseOptions(GrantOptionsSchema, raw);
      const ctx = CommandContext.create(globals());
      try {
        const jurisdiction = options.jurisdiction ?? ctx.config.jurisdictions[0]!;
        getJurisdiction(jurisdiction);
        const identity = await ctx.identity();
        const { role } = identity.info;
        if (role === 'signer' || role === 'ca' || !allowed({ role }, 'codec.decode')) {
          throw new UserError(
            `${identity.info.name} (role ${identity.info.role}) may not decode payloads: ops or auditor only`,
            6,
          );
        }
        const grant = issueCodecGrant(identity, { jurisdiction, hours: options.hours });
        const file = await writeCodecGrant(path.join(ctx.config.dataDir, 'codec', 'grants'), grant);
        await ctx.appendAudit(jurisdiction, [
          grantEvent(grant, { id: identity.info.name, role, serial: identity.info.serial }),
        ]);
        const base = ctx.config.stack?.codec?.url;
        if (ctx.json) printJson({ grantId: grant.grantId, expiresAt: grant.expiresAt, file, token: grant.token });
        else {
          say(
            `Codec grant ${grant.grantId} for ${identity.info.name} (${identity.info.role}), until ${grant.expiresAt}`,
          );
          say(`  kept in ${file}`);
          if (base) say(`  Web UI codec endpoint: ${base}/grant/${grant.grantId}`);
          say(
            `  terminal: temporal workflow show -w <id> --codec-endpoint ${base ?? '<codec server URL>'} --codec-auth "Bearer ${grant.token}"`,
          );
        }
      } finally {
        await ctx.close();
      }
    });

  codec
    .command('locate')
    .description('find the workflow, run and history event of each payload digest a payloads.decoded event records')
    .argument('<digest...>', "digests from the event's details.digests")
    .option('--query <visibility query>', 'scan only these workflows, e.g. \'StudyId="ONC-204"\' (default: all)')
    .option('--limit <n>', 'scan at most this many workflows, newest first', '10000')
    .action(async (digests: string[], raw: Record<string, unknown>) => {
      const options = parseOptions(LocateSchema, { ...raw, digests });
      const ctx = CommandContext.create(globals());
      try {
        const found = await locatePayloads(await ctx.temporal(), options.digests, {
          ...(options.query ? { query: options.query } : {}),
          limit: options.limit,
          onWorkflow: (n) => {
            if (n % 500 === 0) note(`… ${n} workflows scanned`);
          },
        });
        if (ctx.json) printJson(found);
        else {
          for (const f of found) say(`${f.digest}  ${f.workflowId}  run ${f.runId}  event ${f.eventId} ${f.eventType}`);
          const missing = options.digests.filter((d) => !found.some((f) => f.digest === d));
          if (missing.length > 0) note(`not found in the workflows scanned: ${missing.join(', ')}`);
        }
        if (found.length === 0) throw new UserError('no workflow history holds these payloads', EXIT.notRunning);
      } finally {
        await ctx.close();
      }
    });
}
