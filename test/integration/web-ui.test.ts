import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../schemas/audit';
import {
  importConsentCsv,
  ingestDir,
  ingestRejected,
  smallMetadata,
  stackState,
  tempDir,
  writeJsonPackage,
} from '../helpers';
import { sealedEvents, useClients } from '../harness';

// The Temporal Web UI of the suite's stack, in Debian's chromium (headless), as an ops engineer uses it.
const CHROMIUM = process.env.STEWARD_CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
/** Screenshots go here (README's "For ops" shows the ones in docs/screenshots). */
const SHOTS = process.env.STEWARD_SCREENSHOTS ?? path.join(__dirname, '..', '..', 'coverage', 'screenshots');
const STUDY = 'ST-WEBUI';
const clients = useClients();

// CI installs chromium (.ci/run); elsewhere the file says why it does not run instead of failing.
const runnable = existsSync(CHROMIUM) || Boolean(process.env.CI);
if (!runnable) process.stderr.write(`web-ui.test: skipped, no chromium at ${CHROMIUM} (apt install chromium)\n`);

let accepted: string;
let rejected: string;
let rejectionReason: string;
const opened: BrowserContext[] = [];

async function browse(codecOverride?: string): Promise<Page> {
  const context = await chromium.launchPersistentContext(await tempDir('steward-chromium-'), {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1440, height: 1000 },
  });
  opened.push(context);
  const page = context.pages()[0] ?? (await context.newPage());
  if (codecOverride) {
    // What a user can do in the UI's codec settings: point it at another endpoint for this browser.
    await page.addInitScript(
      `localStorage.setItem('endpoint', ${JSON.stringify(JSON.stringify(codecOverride))});` +
        `localStorage.setItem('overrideRemoteCodecConfiguration', 'true');`,
    );
  }
  return page;
}

function workflowUrl(workflowId: string): string {
  return `${stackState().temporal.uiUrl}/namespaces/default/workflows/${encodeURIComponent(workflowId)}`;
}

async function decodeAnswers(page: Page, open: () => Promise<unknown>): Promise<number[]> {
  const statuses: number[] = [];
  page.on('response', (r) => {
    if (r.url().endsWith('/decode') && r.request().method() === 'POST') statuses.push(r.status());
  });
  await open();
  return statuses;
}

async function codecAccessesSince(since: string): Promise<AuditEvent[]> {
  const jurisdiction = stackState().codec!.auditJurisdiction;
  return (await sealedEvents(clients(), jurisdiction))
    .map((e) => e.event)
    .filter((e) => e.action === 'payloads.decoded' && e.at >= since);
}

beforeAll(async () => {
  if (!runnable) return;
  await mkdir(SHOTS, { recursive: true });
  await importConsentCsv(
    clients(),
    'subject_id,scopes,status,icf_version,given_on\nW-1,primary-research,given,v1,2024-01-01\nW-2,primary-research,given,v1,2024-01-01\n',
    'eu',
    STUDY,
  );
  const good = await writeJsonPackage(await tempDir(), smallMetadata({ studyId: STUDY }), {
    'data/visits.csv': 'subject_id,full_name,visit_date,score,note\nW-1,Wanda Web,2025-01-02,5,\n',
  });
  accepted = (await ingestDir(clients(), good)).workflowId;
  const bad = await writeJsonPackage(await tempDir(), smallMetadata({ studyId: STUDY }), {
    'data/visits.csv': 'subject_id,full_name,visit_date,score,note\nW-2,Walt Web,2025-02-30,6,\n',
  });
  const failure = await ingestRejected(clients(), bad);
  rejected = failure.workflowId;
  rejectionReason = failure.app.message;
});

afterAll(async () => {
  for (const context of opened) await context.close();
});

describe.runIf(runnable)('the Temporal Web UI, through the codec server', () => {
  it('lists the workflows of one study by the StudyId search attribute', async () => {
    const page = await browse();
    const query = encodeURIComponent(`StudyId="${STUDY}"`);
    await page.goto(`${stackState().temporal.uiUrl}/namespaces/default/workflows?query=${query}`);
    await page.getByText(rejected).first().waitFor({ timeout: 30_000 });
    await page.getByText(accepted).first().waitFor({ timeout: 30_000 });
    const listed = new Set((await page.locator('body').innerText()).match(/ingest-eu-[0-9a-f]{24}/g));
    // Only this study's ingestions: the filter is applied, not a list of everything.
    expect([...listed].sort()).toEqual([accepted, rejected].sort());
    await page.screenshot({ path: path.join(SHOTS, 'workflows-by-study.png') });
  });

  it("shows an ingestion's input decoded, and a rejected ingestion's reason, as the demo ops identity", async () => {
    const since = new Date().toISOString();
    const page = await browse();
    const statuses = await decodeAnswers(page, async () => {
      await page.goto(workflowUrl(accepted));
      await page.getByText(`\\"studyId\\":\\"${STUDY}\\"`).first().waitFor({ timeout: 30_000 });
    });
    // The UI asks the codec server for each payload on its own: the last may show a moment after the input does.
    await expect
      .poll(() => page.locator('body').innerText(), { timeout: 30_000 })
      .not.toContain('YmluYXJ5L2VuY3J5cHRlZA==');
    await page.screenshot({ path: path.join(SHOTS, 'ingestion-decoded.png') });

    await page.goto(workflowUrl(rejected));
    await page.getByText('must be a date in YYYY-MM-DD form').first().waitFor({ timeout: 30_000 });
    // The reason as the UI prints it: a JSON string.
    expect(await page.locator('body').innerText()).toContain(JSON.stringify(rejectionReason).slice(1, -1));
    expect(rejectionReason).toContain('correct it and ingest it again');
    await page.getByText('must be a date in YYYY-MM-DD form').first().scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(SHOTS, 'rejection-decoded.png') });

    expect(statuses.length).toBeGreaterThan(0);
    expect(new Set(statuses)).toEqual(new Set([200]));
    const accesses = await codecAccessesSince(since);
    expect(accesses.length).toBeGreaterThan(0);
    for (const access of accesses) {
      expect(access).toMatchObject({
        outcome: 'success',
        principal: { id: 'Demo Ops', role: 'ops' },
        details: { via: 'grant', origin: new URL(stackState().temporal.uiUrl).origin, namespace: 'default' },
      });
    }
  });

  it('shows only ciphertext when the codec server refuses (unknown grant, no grant), and audits the refusals', async () => {
    const since = new Date().toISOString();
    const codec = stackState().codec!;
    for (const [endpoint, status, reason] of [
      [`${codec.url}/grant/${'0'.repeat(32)}`, 403, 'no such grant'],
      [
        codec.url,
        401,
        'no identity presented: a codec grant (URL or bearer token) or a client certificate is required',
      ],
    ] as const) {
      const page = await browse(endpoint);
      const statuses = await decodeAnswers(page, async () => {
        await page.goto(workflowUrl(rejected));
        await page.getByText('YmluYXJ5L2VuY3J5cHRlZA==').first().waitFor({ timeout: 30_000 });
      });
      const text = await page.locator('body').innerText();
      expect(text).not.toContain(STUDY);
      expect(text).not.toContain('must be a date');
      expect(text).toContain('Encoded failure');
      expect(new Set(statuses)).toEqual(new Set([status]));
      if (status === 403) await page.screenshot({ path: path.join(SHOTS, 'codec-refused.png') });

      const refusals = (await codecAccessesSince(since)).filter((e) => e.reason === reason);
      expect(refusals.length).toBeGreaterThan(0);
      for (const refusal of refusals) {
        expect(refusal).toMatchObject({ outcome: 'denied', principal: null });
      }
    }
  });
});
