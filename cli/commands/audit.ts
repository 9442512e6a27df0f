import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import { auditQueryWorkflowId, RequestKind } from '../../contracts';
import { getJurisdiction } from '../../jurisdictions';
import {
  AuditActionSchema,
  AuditSegmentSchema,
  InclusionProofSchema,
  type AuditQueryResult,
  type InclusionProof,
} from '../../schemas/audit';
import type { queryAuditWorkflow } from '../../workflows';
import { proveInclusion, tailProblems, verifyProof, verifyTrail, type TrailProblem } from '../../lib/audit/segment';
import { listStoredSegments, readSegment, storageProblems } from '../../lib/audit/store';
import { flushAudit } from '../../lib/client/audit';
import { EXIT, UserError } from '../../lib/runtime/errors';
import { CommandContext, type GlobalOptions } from '../context';
import { parseOptions } from '../options';
import { note, printJson, say } from '../output';

function caOf(ctx: CommandContext, given: string | undefined): string {
  const file = given ?? path.join(ctx.config.pkiDir, 'ca.pem');
  if (!existsSync(file)) throw new UserError(`no CA certificate at ${file}: give the Steward CA with --ca <file>`);
  return readFileSync(file, 'utf8');
}

/**
 * A jurisdiction's stored segments by sequence number: from its evidence bucket (each key's version sealed first, with
 * what its other versions and delete markers say), or from a directory of copies.
 */
async function storedSegments(
  ctx: CommandContext,
  jurisdiction: string,
  from: string | undefined,
  problems: TrailProblem[] = [],
): Promise<Map<number, unknown>> {
  const segments = new Map<number, unknown>();
  if (from) {
    for (const name of (await readdir(from)).filter((n) => /^\d{12}\.json$/.test(n))) {
      const text = await readFile(path.join(from, name), 'utf8');
      let value: unknown = text;
      try {
        value = JSON.parse(text);
      } catch {
        // Unparseable: the verifier reports it.
      }
      segments.set(Number(name.slice(0, 12)), value);
    }
    return segments;
  }
  const bucket = getJurisdiction(jurisdiction).buckets.evidence;
  const s3 = ctx.s3(jurisdiction);
  const stored = await listStoredSegments(s3, bucket);
  for (const { seq, versionId } of stored) segments.set(seq, await readSegment(s3, bucket, seq, versionId));
  problems.push(...storageProblems(stored));
  return segments;
}

/**
 * Reads an inclusion proof file. A file that is not one fails verification naming the file and the rule broken, never
 * what the file holds (which may be anything, personal data included).
 */
async function readProof(file: string): Promise<InclusionProof> {
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new UserError(`${file}: cannot be read (${error.code ?? 'unreadable'}); give an inclusion proof file`);
  });
  const notProof = (rule: string) =>
    new UserError(`${file}: not an inclusion proof (steward-audit-proof/1): ${rule}`, EXIT.verificationFailed);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw notProof('the file is not JSON');
  }
  const parsed = InclusionProofSchema.safeParse(value);
  if (!parsed.success) {
    // Field names come from the schema, except the keys of an event's details, which come from the file.
    const field = (p: PropertyKey[]) => {
      const at = p.indexOf('details');
      return (at >= 0 ? p.slice(0, at + 1) : p).map(String).join('.');
    };
    const rules = parsed.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.length > 0 ? `field "${field(i.path)}": ` : ''}${i.message}`);
    throw notProof(rules.join('; '));
  }
  return parsed.data;
}

function describe(p: TrailProblem): string {
  const where = [
    p.segment !== undefined ? `segment ${p.segment}` : undefined,
    p.position !== undefined ? `position ${p.position}` : undefined,
    p.eventId ? `event ${p.eventId}` : undefined,
  ].filter(Boolean);
  return `${where.join(', ')}: ${p.problem}`;
}

const QueryOptionsSchema = z.object({
  jurisdiction: z.string(),
  actor: z.string().optional(),
  dataset: z.string().optional(),
  subject: z.string().optional(),
  token: z.string().optional(),
  study: z.string().optional(),
  action: AuditActionSchema.optional(),
  since: z.iso.datetime().optional(),
  until: z.iso.datetime().optional(),
  limit: z.coerce.number().int().positive().max(10_000).default(1000),
});

export function registerAuditCommands(program: Command, globals: () => GlobalOptions): void {
  const audit = program.command('audit').description('the audit trail: verify it, prove one event, ask who did what');
  audit
    .command('verify')
    .description("recompute a jurisdiction's trail: chain, Merkle roots, links and signatures (exit 7 on any problem)")
    .option('--jurisdiction <id>', 'one jurisdiction (default: every one served)')
    .option('--from <dir>', 'verify copies of the segments in this directory (as `audit export` writes them)')
    .option('--ca <file>', 'the Steward CA certificate to check signatures against (default: the PKI directory’s)')
    .action(async (options: { jurisdiction?: string; from?: string; ca?: string }) => {
      const ctx = CommandContext.create(globals());
      try {
        const caPem = caOf(ctx, options.ca);
        const jurisdictions = options.jurisdiction
          ? [getJurisdiction(options.jurisdiction).id]
          : ctx.config.jurisdictions;
        if (options.from && jurisdictions.length !== 1) throw new UserError('--from needs --jurisdiction');
        const reports = [];
        for (const jurisdiction of jurisdictions) {
          const head = options.from ? undefined : await flushAudit(await ctx.temporal(), jurisdiction);
          const stored: TrailProblem[] = [];
          const segments = await storedSegments(ctx, jurisdiction, options.from, stored);
          const verified = verifyTrail(segments, caPem);
          const report = { ...verified, problems: [...stored, ...verified.problems, ...tailProblems(head, segments)] };
          reports.push({ jurisdiction, ...report });
          if (!ctx.json) {
            if (report.problems.length === 0) {
              say(
                `audit trail ${jurisdiction}: ${report.segments} segments, ${report.events} events; chain, Merkle roots and signatures verify`,
              );
            } else {
              say(
                `audit trail ${jurisdiction}: ${report.problems.length} problems in ${report.segments} segments, ${report.events} events`,
              );
              for (const p of report.problems) say(`  ${describe(p)}`);
            }
          }
        }
        if (ctx.json) printJson(reports);
        if (reports.some((r) => r.problems.length > 0)) process.exitCode = EXIT.verificationFailed;
      } finally {
        await ctx.close();
      }
    });
  audit
    .command('export')
    .description("copy a jurisdiction's sealed segments and the CA certificate to a directory (for an auditor)")
    .requiredOption('--jurisdiction <id>', 'jurisdiction')
    .requiredOption('--out <dir>', 'directory')
    .action(async (options: { jurisdiction: string; out: string }) => {
      const ctx = CommandContext.create(globals());
      try {
        const jurisdiction = getJurisdiction(options.jurisdiction).id;
        await flushAudit(await ctx.temporal(), jurisdiction);
        await mkdir(options.out, { recursive: true });
        const segments = await storedSegments(ctx, jurisdiction, undefined);
        for (const [seq, segment] of segments) {
          await writeFile(
            path.join(options.out, `${String(seq).padStart(12, '0')}.json`),
            JSON.stringify(segment, null, 2),
          );
        }
        await writeFile(path.join(options.out, 'ca.pem'), caOf(ctx, undefined));
        say(`${segments.size} segments of ${jurisdiction} and ca.pem written to ${path.resolve(options.out)}`);
      } finally {
        await ctx.close();
      }
    });
  audit
    .command('prove')
    .description('write an inclusion proof of one event: the event, its Merkle path and the signed segment head')
    .argument('<event-id>', 'the event id, as `audit query` shows it')
    .requiredOption('--jurisdiction <id>', 'jurisdiction of the event')
    .requiredOption('--out <file>', 'where to write the proof (JSON)')
    .action(async (eventId: string, options: { jurisdiction: string; out: string }) => {
      const ctx = CommandContext.create(globals());
      try {
        const jurisdiction = getJurisdiction(options.jurisdiction).id;
        await flushAudit(await ctx.temporal(), jurisdiction);
        const caPem = caOf(ctx, undefined);
        for (const [, stored] of [...(await storedSegments(ctx, jurisdiction, undefined))].reverse()) {
          const segment = AuditSegmentSchema.safeParse(stored);
          if (segment.success && segment.data.entries.some((e) => e.event.id === eventId)) {
            const proof = proveInclusion(segment.data, eventId, caPem);
            await writeFile(options.out, JSON.stringify(proof, null, 2));
            say(
              `proof of event ${eventId} (position ${proof.head.firstPosition + proof.leafIndex}, segment ${proof.head.seq}) written to ${options.out}`,
            );
            return;
          }
        }
        throw new UserError(`no sealed event ${eventId} in the ${jurisdiction} audit trail`, EXIT.notRunning);
      } finally {
        await ctx.close();
      }
    });
  audit
    .command('verify-proof')
    .description('check an inclusion proof offline, against the Steward CA certificate (exit 7 when it fails)')
    .argument('<file>', 'proof file')
    .option('--ca <file>', 'the Steward CA certificate (default: the PKI directory’s, else the one in the proof)')
    .action(async (file: string, options: { ca?: string }) => {
      const proof = await readProof(file);
      const ctx = CommandContext.create(globals());
      const defaultCa = path.join(ctx.config.pkiDir, 'ca.pem');
      const caPem = options.ca
        ? readFileSync(options.ca, 'utf8')
        : existsSync(defaultCa)
          ? readFileSync(defaultCa, 'utf8')
          : proof.caCertificate;
      if (!options.ca && !existsSync(defaultCa))
        note('checking against the CA certificate inside the proof; give --ca to use one you hold');
      const problems = verifyProof(proof, caPem);
      const position = proof.head.firstPosition + proof.leafIndex;
      if (ctx.json) printJson({ valid: problems.length === 0, position, event: proof.event, problems });
      else if (problems.length === 0) {
        say(
          `proof verifies: event ${proof.event.id} is at position ${position} of the ${proof.head.jurisdiction} audit trail (segment ${proof.head.seq}, sealed ${proof.head.sealedAt})`,
        );
        say(
          `  ${proof.event.at} ${proof.event.principal?.id ?? 'unidentified'} (${proof.event.principal?.role ?? '-'}) ${proof.event.action} ${proof.event.outcome}`,
        );
      } else {
        say(`proof does not verify:`);
        for (const p of problems) say(`  ${p}`);
      }
      if (problems.length > 0) process.exitCode = EXIT.verificationFailed;
    });
  audit
    .command('query')
    .description('who accessed what, when and why: sealed events matching every filter (auditor or dpo)')
    .requiredOption('--jurisdiction <id>', 'jurisdiction')
    .option('--actor <name-or-serial>', 'printed name or certificate serial of the actor')
    .option('--dataset <id>', 'dataset id')
    .option('--subject <identifier>', "a subject's real identifier (needs --study; never shown or stored)")
    .option('--token <token>', 'a subject token')
    .option('--study <id>', 'study id')
    .option('--action <action>', `one of: ${AuditActionSchema.options.join(', ')}`)
    .option('--since <time>', 'ISO 8601 UTC, e.g. 2026-11-01T00:00:00Z')
    .option('--until <time>', 'ISO 8601 UTC')
    .option('--limit <n>', 'most events to return', '1000')
    .action(async (raw: Record<string, unknown>) => {
      const options = parseOptions(QueryOptionsSchema, raw);
      const jurisdiction = getJurisdiction(options.jurisdiction).id;
      const ctx = CommandContext.create(globals());
      try {
        await flushAudit(await ctx.temporal(), jurisdiction);
        const requestId = randomUUID();
        const handle = await ctx.startRequest<typeof queryAuditWorkflow>('queryAuditWorkflow', {
          workflowId: auditQueryWorkflowId(jurisdiction, requestId),
          requestId,
          kind: RequestKind.AuditQuery,
          action: 'audit.query',
          jurisdiction,
          params: {
            ...(options.actor ? { actor: options.actor } : {}),
            ...(options.dataset ? { datasetId: options.dataset } : {}),
            ...(options.subject ? { subject: options.subject } : {}),
            ...(options.token ? { token: options.token } : {}),
            ...(options.study ? { studyId: options.study } : {}),
            ...(options.action ? { action: options.action } : {}),
            ...(options.since ? { since: options.since } : {}),
            ...(options.until ? { until: options.until } : {}),
            limit: options.limit,
          },
        });
        const result: AuditQueryResult = await handle.result();
        const { subjectTokens: _tokens, ...shown } = result;
        if (ctx.json) printJson(shown);
        else {
          for (const { position, event } of result.events) {
            const who = event.principal ? `${event.principal.id} (${event.principal.role})` : 'unidentified';
            const what = [event.targets.datasetId, event.targets.studyId, event.targets.certificateId]
              .filter(Boolean)
              .join(' ');
            say(
              `${String(position).padStart(7)}  ${event.at}  ${who}  ${event.action} ${event.outcome}${what ? `  ${what}` : ''}${event.reason ? `  why: ${event.reason}` : ''}  [${event.id}]`,
            );
          }
          say(`${result.events.length} events${result.truncated ? ' (more match: raise --limit)' : ''}`);
        }
      } finally {
        await ctx.close();
      }
    });
}
