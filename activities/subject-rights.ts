import type { S3Client } from '@aws-sdk/client-s3';
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { withScratchDb } from '../lib/tabular/scratch';
import { heartbeating } from './heartbeat';
import type { SignerMaterial } from '../lib/pki/authority';
import { buildAccessPackage } from '../lib/subject-rights/access-package';
import { discoverByIndex, discoverByScan } from '../lib/subject-rights/discovery';
import { discoverUploads } from '../lib/subject-rights/uploads';
import { rewriteUploadWithoutSubject, type RewrittenUpload } from '../lib/subject-rights/upload-rewrite';
import {
  eraseFromIndex,
  indexExport,
  rebuildIndex,
  verifyIndex,
  type IndexChange,
  type IndexVerification,
} from '../lib/subject-rights/subject-index';
import {
  decideErasureItems,
  rewriteWithoutSubject,
  type ErasureItem,
  type RewriteResult,
} from '../lib/subject-rights/erasure';
import type { KeyStore } from '../lib/crypto/keystore';
import { tokenize } from '../lib/crypto/pseudonymize';
import { subjectDigest, subjectDigestKey } from '../lib/subject-rights/digest';
import { parseInput } from '../contracts/parse';
import { StudyIdSchema } from '../schemas/common';
import type { Jurisdiction } from '../schemas/jurisdiction';
import {
  AccessPackageInputSchema,
  DecideErasureInputSchema,
  DiscoveryInputSchema,
  DiscoverUploadsInputSchema,
  type DiscoverUploadsInput,
  type SubjectPlace,
  EraseFromIndexInputSchema,
  type EraseFromIndexInput,
  RewriteInputSchema,
  RewriteUploadInputSchema,
  type DecideErasureInput,
  type RewriteInput,
  type RewriteUploadInput,
  OpenSubjectRequestInputSchema,
  type AccessPackageInput,
  type AccessPackageSummary,
  type Discovery,
  type DiscoveryInput,
  SubjectTokensInputSchema,
  type OpenSubjectRequestInput,
  type SubjectTokens,
  type SubjectTokensInput,
} from '../schemas/subject-request';

export function createSubjectRightsActivities({
  s3,
  keys,
  jurisdiction,
  scratchDir,
  temporal,
  signer,
  caPem,
}: {
  s3: S3Client;
  keys: KeyStore;
  jurisdiction: Jurisdiction;
  scratchDir: string;
  /** A client of the worker's Temporal service, opened on first use. */
  temporal: () => Promise<Client>;
  /** The jurisdiction's evidence signer, which signs access packages' manifests. */
  signer: () => Promise<SignerMaterial>;
  caPem: () => string;
}) {
  return {
    /**
     * Every place of the jurisdiction that holds the subject's tokens (curated tables, consent registries, vaults),
     * and what finding them read. Reads only; on the curation queue.
     */
    async discoverSubjectActivity(raw: DiscoveryInput): Promise<Discovery> {
      const input = parseInput(DiscoveryInputSchema, raw, 'discoverSubjectActivity');
      const progress = { phase: 'starting', datasets: 0 };
      return heartbeating(
        () => progress,
        () =>
          withScratchDb(scratchDir, 'discover', async (conn, dir) => {
            if (input.by === 'scan') {
              progress.phase = 'reading every table of the subject’s studies';
              return discoverByScan(s3, jurisdiction, conn, dir, input.found, (datasets) => {
                progress.datasets = datasets;
              });
            }
            const { sync, ...found } = await discoverByIndex(s3, jurisdiction, conn, dir, input.found, (phase) => {
              progress.phase = phase;
            });
            Context.current().log.info('subject discovery by index', {
              objectsRead: found.read.objects,
              bytesRead: found.read.bytes,
              datasetsIndexedFirst: sync.indexed,
            });
            return found;
          }),
      );
    },

    /**
     * After an erasure: the rewritten tables keep their index places under their new versions, and the subject's
     * tokens leave every index shard (see `eraseFromIndex`). Retry-safe.
     */
    async eraseFromIndexActivity(raw: EraseFromIndexInput): Promise<{ shardsRewritten: number }> {
      const input = parseInput(EraseFromIndexInputSchema, raw, 'eraseFromIndexActivity');
      return heartbeating(
        () => ({ phase: 'removing the subject from the index' }),
        () => eraseFromIndex({ s3, jurisdiction }, input.tokens, input.rewritten, input.kept),
      );
    },

    /** `steward dsr index verify`: the index against a full scan of every table. Reads only. */
    async verifySubjectIndexActivity(): Promise<IndexVerification> {
      return withScratchDb(scratchDir, 'index-verify', (conn, dir) =>
        verifyIndex({ s3, jurisdiction }, conn, dir, (done, of) => Context.current().heartbeat({ done, of })),
      );
    },

    /** `steward dsr index rebuild`: the index deleted and built again from every table. */
    async rebuildSubjectIndexActivity(): Promise<IndexChange> {
      return withScratchDb(scratchDir, 'index-rebuild', (conn, dir) =>
        rebuildIndex({ s3, jurisdiction }, conn, dir, (done, of) => Context.current().heartbeat({ done, of })),
      );
    },

    /** The raw uploads naming the subject by identifier (see `discoverUploads`). Reads only; on the curation queue. */
    async discoverUploadsActivity(raw: DiscoverUploadsInput): Promise<{ places: SubjectPlace[] }> {
      const input = parseInput(DiscoverUploadsInputSchema, raw, 'discoverUploadsActivity');
      const progress = { units: 0 };
      const found = await heartbeating(
        () => progress,
        () =>
          discoverUploads(s3, jurisdiction, input.subjectId, input.studyId, (units) => {
            progress.units = units;
          }),
      );
      return { places: found.places };
    },

    /** Decides every place of an erasure request: erased, or kept with its legal basis (see `decideErasureItems`). */
    async decideErasureItemsActivity(raw: DecideErasureInput): Promise<ErasureItem[]> {
      const input = parseInput(DecideErasureInputSchema, raw, 'decideErasureItemsActivity');
      return heartbeating(
        () => ({ phase: 'deciding each place' }),
        () => decideErasureItems(s3, jurisdiction, input.places, input.asOf, input.noRight, input.overrides),
      );
    },

    /** Rewrites one table without the subject's rows, as a new version (see `rewriteWithoutSubject`). Retry-safe. */
    async rewriteWithoutSubjectActivity(raw: RewriteInput): Promise<RewriteResult> {
      const input = parseInput(RewriteInputSchema, raw, 'rewriteWithoutSubjectActivity');
      const { place } = input.item;
      if (place.kind !== 'dataset') throw new Error(`${input.item.itemId} is not a table`);
      return heartbeating(
        () => ({ phase: `rewriting ${input.item.itemId}` }),
        () =>
          withScratchDb(scratchDir, 'rewrite', (conn, dir) =>
            rewriteWithoutSubject(s3, jurisdiction, conn, dir, { ...input.item, place }, input.tokens),
          ),
      );
    },

    /**
     * Rewrites one raw upload without the subject's rows, as new versions, with a new manifest recording the original
     * package digest and the request (see `rewriteUploadWithoutSubject`). Retry-safe: it rewrites from the originals.
     */
    async rewriteUploadWithoutSubjectActivity(raw: RewriteUploadInput): Promise<RewrittenUpload> {
      const input = parseInput(RewriteUploadInputSchema, raw, 'rewriteUploadWithoutSubjectActivity');
      const { place } = input.item;
      if (place.kind !== 'upload') throw new Error(`${input.item.itemId} is not a raw upload`);
      return heartbeating(
        () => ({ phase: `rewriting ${input.item.itemId}` }),
        () => rewriteUploadWithoutSubject(s3, place, input),
      );
    },

    /** Builds and signs the subject's access package in the exports bucket (see `buildAccessPackage`). Retry-safe. */
    async buildAccessPackageActivity(raw: AccessPackageInput): Promise<AccessPackageSummary> {
      const input = parseInput(AccessPackageInputSchema, raw, 'buildAccessPackageActivity');
      const material = await signer();
      const built = await heartbeating(
        () => ({ phase: 'writing the access package' }),
        () =>
          withScratchDb(scratchDir, 'access', (conn, workDir) =>
            buildAccessPackage({ s3, keys, jurisdiction, conn, workDir, signer: material, caPem: caPem() }, input),
          ),
      );
      // The package holds the subject's data: a later erasure finds it through the index.
      await indexExport(
        { s3, jurisdiction },
        { kind: 'export', requestId: input.requestId, bucket: built.bucket, prefix: built.prefix },
        input.found.studies.flatMap((s) => s.tokens.map((t) => t.token)),
      );
      return built;
    },

    /**
     * Whether the workflow of an open request still runs: a request whose workflow was terminated or reset away (it
     * never closed its marker) answers nobody, so a new request for the subject takes its place.
     */
    async requestRunningActivity(raw: { workflowId: string }): Promise<{ running: boolean }> {
      const client = await temporal();
      try {
        const d = await client.workflow.getHandle(String(raw.workflowId)).describe();
        return { running: d.status.name === 'RUNNING' };
      } catch (error) {
        if ((error as Error).name === 'WorkflowNotFoundError') return { running: false };
        throw error;
      }
    },

    /**
     * The ingestion and preprocessing workflows of the jurisdiction still running that started before `startedBefore`
     * (visibility: their Jurisdiction search attribute and start time). Reads only.
     */
    async inFlightJobsActivity(raw: { startedBefore: string; studyIds: string[] }): Promise<{ running: string[] }> {
      const before = new Date(String(raw.startedBefore));
      if (Number.isNaN(before.getTime())) throw new Error('startedBefore is not a date-time');
      const studies = (raw.studyIds ?? []).map((s) => StudyIdSchema.parse(s));
      const client = await temporal();
      const running: string[] = [];
      // Ingestions of the subject's studies (all of them when the subject is in none yet), and every preprocessing
      // job, which names datasets rather than a study.
      const ingestions =
        studies.length > 0
          ? `(WorkflowType = 'ingestPackageWorkflow' AND StudyId IN (${studies.map((s) => `'${s}'`).join(', ')}))`
          : `WorkflowType = 'ingestPackageWorkflow'`;
      const query =
        `(${ingestions} OR WorkflowType = 'preprocessJobWorkflow') AND ExecutionStatus = 'Running' ` +
        `AND Jurisdiction = '${jurisdiction.id}' AND StartTime < '${before.toISOString()}'`;
      for await (const w of client.workflow.list({ query })) running.push(w.workflowId);
      return { running };
    },

    /** The subject's keyed digest (HMAC under the jurisdiction's subject-digest key, created on first use). */
    async subjectDigestActivity(raw: OpenSubjectRequestInput): Promise<{ subjectDigest: string }> {
      const input = parseInput(OpenSubjectRequestInputSchema, raw, 'subjectDigestActivity');
      return { subjectDigest: subjectDigest(await subjectDigestKey(keys, jurisdiction.id), input.subjectId) };
    },

    /**
     * The subject's token under every live key version of every study of the jurisdiction (or the one named), and the
     * destroyed versions, whose data is crypto-erased. Creates no key: a study without keys holds no data.
     */
    async subjectTokensActivity(raw: SubjectTokensInput): Promise<SubjectTokens> {
      const input = parseInput(SubjectTokensInputSchema, raw, 'subjectTokensActivity');
      const studies = (await keys.studies(jurisdiction.id)).filter((s) => !input.studyId || s === input.studyId);
      const out: SubjectTokens['studies'] = [];
      for (const studyId of studies) {
        const versions = await keys.studyKeyVersions(jurisdiction.id, studyId);
        const tokens: SubjectTokens['studies'][number]['tokens'] = [];
        for (const v of versions.filter((k) => k.state !== 'destroyed')) {
          const key = await keys.studyKeyVersion(jurisdiction.id, studyId, v.version);
          tokens.push({ version: v.version, token: tokenize(key.material, key.version, input.subjectId) });
        }
        const cryptoErased = versions.filter((k) => k.state === 'destroyed').map((k) => k.version);
        if (tokens.length > 0 || cryptoErased.length > 0) out.push({ studyId, tokens, cryptoErased });
      }
      return { studies: out };
    },
  };
}
