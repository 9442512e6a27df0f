import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { RequestKind, subjectRequestWorkflowId } from '../../contracts';
import { getJurisdiction } from '../../jurisdictions';
import { checkCertificate, readCertificateFiles } from '../../lib/evidence/certificate';
import { decideSubjectRequest } from '../../lib/client/subject-requests';
import type { SubjectRequestKind, SubjectRequestStatus } from '../../schemas/subject-request';
import type { subjectRequestWorkflow } from '../../workflows';
import type { CommandContext } from '../context';
import { say } from '../output';

const ACTIONS = { access: 'dsr.access', erasure: 'dsr.erase' } as const;

/**
 * Files a request as the DPO of `dpo`, verifies the subject's identity (and approves an erasure), and waits for its
 * end; each step's outcome goes to `log`.
 */
export async function runRequest(
  dpo: CommandContext,
  kind: Extract<SubjectRequestKind, 'access' | 'erasure'>,
  jurisdiction: string,
  studyId: string,
  subjectId: string,
  log: (line: string) => void = say,
): Promise<SubjectRequestStatus> {
  const requestId = randomUUID();
  const workflowId = subjectRequestWorkflowId(jurisdiction, requestId);
  const handle = await dpo.startRequest<typeof subjectRequestWorkflow>('subjectRequestWorkflow', {
    workflowId,
    requestId,
    kind: kind === 'access' ? RequestKind.SubjectAccess : RequestKind.SubjectErasure,
    action: ACTIONS[kind],
    jurisdiction,
    studyId,
    params: {
      subjectId,
      studyId,
      received: new Date().toISOString(),
      reason: `demo: the subject's ${kind} request, received by letter`,
    },
    meaning: `file ${kind === 'access' ? 'an access' : 'an erasure'} request on the data subject’s behalf`,
  });
  const client = await dpo.temporal();
  const identity = await dpo.identity();
  const decide = async (decision: 'verify-identity' | 'approve', meaning: string) => {
    for (let tries = 0; ; tries++) {
      try {
        return await decideSubjectRequest(client, identity, {
          requestId,
          jurisdiction,
          workflowId,
          params:
            decision === 'verify-identity'
              ? {
                  decision,
                  requestId,
                  method: 'id-document',
                  evidenceRef: 'DEMO-CASE-1',
                  reason: 'demo: identity document checked',
                }
              : { decision, requestId, reason: 'demo: no ground to refuse' },
          meaning,
        });
      } catch (error) {
        // The filing is recorded a moment after the start: the first decision waits for it.
        if (tries > 40) throw error;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  };
  await decide('verify-identity', 'confirm the data subject’s identity was verified');
  if (kind === 'erasure') await decide('approve', 'approve the request');
  const done = await handle.result();
  const url = dpo.uiUrl(workflowId);
  log(`${kind === 'access' ? 'Access' : 'Erasure'} request ${requestId} (${jurisdiction}/${studyId}): ${done.state}`);
  for (const [k, v] of Object.entries(done.outcome)) log(`  ${k}: ${v}`);
  if (url) log(`  Temporal UI: ${url}`);
  return done;
}

/** A subject of a generated consent file whose consent is in force for primary research: the study holds their rows. */
export async function consentingSubject(consentFile: string): Promise<string> {
  const consenting = (await readFile(consentFile, 'utf8'))
    .split('\n')
    .slice(1)
    .map((line) => line.split(','))
    .find(([, scopes, status]) => status === 'given' && scopes?.split(';').includes('primary-research'));
  if (!consenting) throw new Error(`${consentFile}: no subject whose consent is in force`);
  return consenting[0]!;
}

/**
 * The DPO's part of the demo: an access request and an erasure request for one consenting subject of the EU demo
 * study (one whose rows the study holds), each
 * filed, identity-verified and (the erasure) approved with the demo DPO's e-signatures; the erasure's certificate is
 * then checked as `steward cert verify` checks it (signature, chain, schema).
 */
export async function subjectRightsDemo(dpo: CommandContext, consentFile: string, studyId: string): Promise<void> {
  const jurisdiction = 'eu';
  const subjectId = await consentingSubject(consentFile);
  say(`\nSubject requests, as the DPO files and signs them (subject ${subjectId} of ${studyId}):`);
  const access = await runRequest(dpo, 'access', jurisdiction, studyId, subjectId);
  say(`  steward --identity ${dpo.config.dataDir}/identities/dpo dsr export ${access.requestId} --out ./access`);
  const erasure = await runRequest(dpo, 'erasure', jurisdiction, studyId, subjectId);
  const certificateId = String(erasure.outcome.certificateId ?? '');
  const found = certificateId
    ? await readCertificateFiles(dpo.s3(jurisdiction), getJurisdiction(jurisdiction).buckets.evidence, certificateId)
    : undefined;
  if (!found) throw new Error(`the erasure request ${erasure.requestId} has no certificate`);
  const ca = readFileSync(path.join(dpo.config.pkiDir, 'ca.pem'), 'utf8');
  const { problems } = checkCertificate(found.json, found.p7s, ca);
  if (problems.length > 0) throw new Error(`certificate ${certificateId} does not verify: ${problems.join('; ')}`);
  say(`Certificate ${certificateId} verifies: signature, chain to the Steward CA, schema.`);
  say(`  steward cert verify ${certificateId}`);
}
