import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { ingestWorkflowId, subjectRequestWorkflowId } from '../../contracts';
import { importConsent } from '../../lib/client/consent-import';
import { readLocalPackage } from '../../lib/client/submit';
import type { FunctionalReport } from '../../schemas/qualification';
import { ingestPath } from '../commands/ingest';
import type { CommandContext } from '../context';
import { generateDemoPackage } from '../demo/generate';
import { consentingSubject, runRequest } from '../demo/subject-rights';
import { note } from '../output';

/**
 * The operational qualification's tests, run as the testers would by hand, each with their own identity, in the run's
 * scratch study: a good package ingested (steward), a damaged one ingested (to be rejected), an erasure request for
 * one of its subjects filed, verified and approved (DPO). What each did is reported to the run, which checks it.
 */
export async function runFunctionalTests(
  testers: { steward: CommandContext; dpo: CommandContext },
  jurisdiction: string,
  studyId: string,
): Promise<FunctionalReport> {
  const report: FunctionalReport = { studyId, curated: null, rejected: null, erasure: null, problems: [] };
  const work = await mkdtemp(path.join(os.tmpdir(), 'steward-oq-'));
  const { steward, dpo } = testers;
  const step = async (name: string, run: () => Promise<void>) => {
    try {
      await run();
    } catch (error) {
      report.problems.push(`${name}: ${(error as Error).message.split('\n')[0]!.slice(0, 900)}`);
    }
  };
  try {
    const generate = (name: string, seed: number, badRow: boolean) =>
      generateDemoPackage({
        out: path.join(work, name),
        jurisdiction,
        studyId,
        rows: 200,
        subjects: 12,
        seed,
        badRow,
        dataClass: 'real-world',
      });
    const importFor = async (consentFile: string) =>
      importConsent(
        { client: await steward.temporal(), s3: steward.s3(jurisdiction), identity: await steward.identity() },
        consentFile,
        jurisdiction,
        studyId,
      );
    let consentFile = '';
    await step('ingesting a good package', async () => {
      note(`operational qualification: ingesting a good package into scratch study ${studyId}`);
      const good = await generate('good', 11, false);
      await importFor(good.consentFile);
      consentFile = good.consentFile;
      const { packageId } = await readLocalPackage(good.packageDir);
      await ingestPath(steward, good.packageDir);
      report.curated = { packageId, workflowId: ingestWorkflowId(jurisdiction, packageId) };
    });
    await step('ingesting a damaged package', async () => {
      note('operational qualification: ingesting a damaged package (one impossible date), to be rejected');
      const bad = await generate('damaged', 12, true);
      await importFor(bad.consentFile);
      const { packageId } = await readLocalPackage(bad.packageDir);
      report.rejected = { packageId, workflowId: ingestWorkflowId(jurisdiction, packageId) };
      try {
        await ingestPath(steward, bad.packageDir);
      } catch (error) {
        if (!(error instanceof WorkflowFailedError)) throw error;
      }
    });
    await step("a subject's erasure request", async () => {
      if (!consentFile) throw new Error('no good package, so no subject to erase');
      note('operational qualification: an erasure request for one subject of the scratch study');
      const done = await runRequest(dpo, 'erasure', jurisdiction, studyId, await consentingSubject(consentFile), note);
      report.erasure = { workflowId: subjectRequestWorkflowId(jurisdiction, done.requestId) };
    });
    return report;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
