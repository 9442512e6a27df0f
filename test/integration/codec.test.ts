import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import type { temporal } from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grantFingerprint, issueCodecGrant } from '../../lib/codec/grant';
import { locatePayloads } from '../../lib/codec/locate';
import { startCodecServer, type RunningCodecServer } from '../../lib/codec/embedded';
import { signRequest } from '../../lib/auth/request';
import { StewardAuthority } from '../../lib/pki/authority';
import { openIdentity, writeIdentity, type Identity } from '../../lib/pki/identity';
import { ensureTool } from '../../lib/stack/tools';
import type { AuditEvent } from '../../schemas/audit';
import {
  identity,
  importConsentCsv,
  ingestDir,
  smallMetadata,
  stackState,
  tempDir,
  writeJsonPackage,
  stackSteward,
} from '../helpers';
import { sealedEvents, useClients } from '../harness';

const clients = useClients();
const STUDY = 'ST-CODEC';

interface JsonPayload {
  metadata: Record<string, string>;
  data: string;
}

let workflowId: string;
let payload: JsonPayload;
let plaintext: unknown;

function codecState() {
  const codec = stackState().codec;
  if (!codec) throw new Error('the stack runs no codec server');
  return codec;
}

function uiOrigin(): string {
  return new URL(stackState().temporal.uiUrl).origin;
}

function digest(p: JsonPayload): string {
  return createHash('sha256').update(Buffer.from(p.data, 'base64')).digest('hex').slice(0, 16);
}

function asJson(p: temporal.api.common.v1.IPayload): JsonPayload {
  return {
    metadata: Object.fromEntries(
      Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
    ),
    data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
  };
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-namespace': 'default', ...headers },
    body: JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

function decodedJson(text: string): unknown {
  const [decoded] = (JSON.parse(text) as { payloads: JsonPayload[] }).payloads;
  expect(Buffer.from(decoded!.metadata.encoding!, 'base64').toString()).toBe('json/plain');
  return JSON.parse(Buffer.from(decoded!.data, 'base64').toString('utf8'));
}

/** The sealed `payloads.decoded` events that name this payload digest. */
async function accessesOf(d: string): Promise<AuditEvent[]> {
  return (await sealedEvents(clients(), codecState().auditJurisdiction))
    .map((e) => e.event)
    .filter((e) => e.action === 'payloads.decoded' && String(e.details.digests).split(' ').includes(d));
}

beforeAll(async () => {
  await importConsentCsv(
    clients(),
    'subject_id,scopes,status,icf_version,given_on\nC-1,primary-research,given,v1,2024-01-01\n',
    'eu',
    STUDY,
  );
  const dir = await writeJsonPackage(await tempDir(), smallMetadata({ studyId: STUDY }), {
    'data/visits.csv': 'subject_id,full_name,visit_date,score,note\nC-1,Cora Codec,2025-01-02,5,\n',
  });
  workflowId = (await ingestDir(clients(), dir)).workflowId;
  const history = await clients().client.workflow.getHandle(workflowId).fetchHistory();
  const started = history.events![0]!.workflowExecutionStartedEventAttributes!;
  payload = asJson(started.input!.payloads![0]!);
  plaintext = await clients().client.options.loadedDataConverter.payloadConverter.fromPayload(
    (await clients().client.options.loadedDataConverter.payloadCodecs[0]!.decode([started.input!.payloads![0]!]))[0]!,
  );
});

describe('what ops see without decoding', () => {
  it('an ingestion carries Jurisdiction, StudyId, DatasetId, RequestId and RequestKind, none of them personal data', async () => {
    const described = await clients().client.workflow.getHandle(workflowId).describe();
    const attributes = Object.fromEntries(
      described.typedSearchAttributes.getAll().map((pair) => [pair.key.name, pair.value]),
    );
    // Steward's own attributes (the server adds BuildIds).
    expect(attributes).toMatchObject({
      Jurisdiction: 'eu',
      StudyId: STUDY,
      DatasetId: expect.stringMatching(/^ds-eu-[0-9a-f]{24}$/),
      RequestId: expect.stringMatching(/^[0-9a-f-]{36}$/),
      RequestKind: 'ingestion',
    });
    expect(JSON.stringify(attributes)).not.toMatch(/Cora|C-1/);
    const progress = await clients().client.workflow.getHandle(workflowId).query<{ phase: string }>('progress');
    expect(progress.phase).toEqual(expect.any(String));
  });
});

describe("the embedded stack's codec server", () => {
  it('decodes for the Web UI through the grant in its URL, as the demo ops identity, and audits the access', async () => {
    // What history holds is ciphertext.
    expect(Buffer.from(payload.metadata.encoding!, 'base64').toString()).toBe('binary/encrypted');
    const answer = await post(`${codecState().uiEndpoint}/decode`, { payloads: [payload] }, { origin: uiOrigin() });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('access-control-allow-origin')).toBe(uiOrigin());
    expect(decodedJson(answer.text)).toEqual(plaintext);
    expect(JSON.stringify(plaintext)).toContain(STUDY);

    const [access] = await accessesOf(digest(payload));
    expect(access).toMatchObject({
      outcome: 'success',
      principal: { id: 'Demo Ops', role: 'ops' },
      details: { operation: 'decode', via: 'grant', namespace: 'default', origin: uiOrigin(), payloads: 1 },
    });
    // A payload does not say whose it is: every jurisdiction's trail records the access.
    const inUs = (await sealedEvents(clients(), 'us'))
      .map((e) => e.event)
      .filter((e) => e.action === 'payloads.decoded' && String(e.details.digests).split(' ').includes(digest(payload)));
    expect(inUs.map((e) => [e.outcome, e.principal?.id])).toEqual([['success', 'Demo Ops']]);
    // The UI's request does not name the workflow: the recorded digest finds it.
    expect(await locatePayloads(clients().client, [digest(payload)], { query: `StudyId="${STUDY}"` })).toContainEqual({
      digest: digest(payload),
      workflowId,
      runId: expect.any(String),
      eventId: '1',
      eventType: 'EVENT_TYPE_WORKFLOW_EXECUTION_STARTED',
    });
  });

  it('refuses without a grant (401) and with an unknown grant (403), and audits both refusals', async () => {
    const bare = { payloads: [{ ...payload }] };
    const none = await post(`${codecState().url}/decode`, bare, { origin: uiOrigin() });
    expect(none.status).toBe(401);
    expect(none.text).not.toContain('Cora');
    const unknown = await post(`${codecState().url}/grant/${'0'.repeat(32)}/decode`, bare, { origin: uiOrigin() });
    expect(unknown.status).toBe(403);
    expect(unknown.text).toBe('no such grant');
    const refusals = (await accessesOf(digest(payload))).filter((e) => e.outcome === 'denied');
    expect(refusals.map((e) => [e.principal, e.reason, e.details.via])).toEqual([
      [null, 'no identity presented: a codec grant (URL or bearer token) or a client certificate is required', 'none'],
      [null, 'no such grant', 'grant'],
    ]);
  });

  it('audits what fails too: a bad body (400), another method (405), a body too large (413), an undecodable payload (500)', async () => {
    const since = new Date().toISOString();
    const grant = issueCodecGrant(identity('ops'), { jurisdiction: codecState().auditJurisdiction, hours: 1 });
    const auth = { authorization: `Bearer ${grant.token}` };
    const url = `${codecState().url}/decode`;
    expect((await post(url, { payloads: 'none' }, auth)).status).toBe(400);
    expect((await fetch(url, { method: 'GET' })).status).toBe(405);
    // On a connection of its own: the server answers before the body is read, and closes it.
    const large = await new Promise<number | undefined>((resolve) => {
      const req = http.request(url, { method: 'POST', agent: false, headers: auth }, (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on('error', () => resolve(undefined));
      req.end(Buffer.alloc(9 * 1024 * 1024, 32));
    });
    if (large !== undefined) expect(large).toBe(413);
    const broken = { ...payload, data: Buffer.from('not ciphertext').toString('base64') };
    const failed = await post(url, { payloads: [broken] }, auth);
    expect(failed.status).toBe(500);
    expect(failed.text).toBe('codec server error');
    const recorded = (await sealedEvents(clients(), codecState().auditJurisdiction))
      .map((e) => e.event)
      .filter((e) => e.action === 'payloads.decoded' && e.at >= since && /^\d{3}: /.test(e.reason ?? ''));
    expect(recorded.map((e) => [e.outcome, e.reason!.slice(0, 4)]).sort()).toEqual(
      [
        ['denied', '400:'],
        ['denied', '405:'],
        ['denied', '413:'],
        ['failure', '500:'],
      ].sort(),
    );
    expect(recorded.find((e) => e.outcome === 'failure')).toMatchObject({
      principal: { id: 'Demo Ops', role: 'ops' },
      details: { via: 'bearer', digests: digest(broken) },
    });
  });

  it('answers CORS for the Web UI origin only', async () => {
    const preflight = (origin: string) =>
      fetch(`${codecState().uiEndpoint}/decode`, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type,x-namespace',
        },
      });
    const allowed = await preflight(uiOrigin());
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-origin')).toBe(uiOrigin());
    expect(allowed.headers.get('access-control-allow-headers')).toContain('x-namespace');

    const foreign = await preflight('http://attacker.example');
    expect(foreign.status).toBe(403);
    expect(foreign.headers.get('access-control-allow-origin')).toBeNull();
    const posted = await post(
      `${codecState().uiEndpoint}/decode`,
      { payloads: [payload] },
      { origin: 'http://attacker.example' },
    );
    expect(posted.status).toBe(403);
    expect(posted.headers.get('access-control-allow-origin')).toBeNull();
    const [refusal] = (await accessesOf(digest(payload))).filter((e) => e.details.origin === 'http://attacker.example');
    expect(refusal).toMatchObject({ outcome: 'denied', reason: 'origin http://attacker.example is not allowed' });
  });

  it('decodes a history on the command line: temporal workflow show --codec-endpoint with a bearer grant', async () => {
    const temporalBin = await ensureTool('temporal');
    const grant = issueCodecGrant(identity('auditor'), { jurisdiction: codecState().auditJurisdiction, hours: 1 });
    const show = (auth: string[]) =>
      spawnSync(
        temporalBin,
        [
          'workflow',
          'show',
          '--address',
          stackState().temporal.address,
          '--namespace',
          'default',
          '-w',
          workflowId,
          '-o',
          'json',
          '--codec-endpoint',
          codecState().url,
          ...auth,
        ],
        { encoding: 'utf8', timeout: 60_000 },
      );
    const decoded = show(['--codec-auth', `Bearer ${grant.token}`]);
    expect(decoded.status, decoded.stderr).toBe(0);
    const history = JSON.parse(decoded.stdout) as {
      events: { workflowExecutionStartedEventAttributes?: { input: { payloads: JsonPayload[] } } }[];
    };
    const input = history.events[0]!.workflowExecutionStartedEventAttributes!.input.payloads[0]!;
    expect(Buffer.from(input.metadata.encoding!, 'base64').toString()).toBe('json/plain');
    expect(JSON.parse(Buffer.from(input.data, 'base64').toString('utf8'))).toEqual(plaintext);
    expect(decoded.stdout).not.toContain(Buffer.from('binary/encrypted').toString('base64'));

    // Without the grant the CLI gets no plaintext: the codec server refuses, and says why.
    // Without the grant the CLI gets no plaintext: the codec server answers 401 until the CLI gives up.
    const refused = show([]);
    expect(refused.status).not.toBe(0);
    expect(refused.stdout).not.toContain(Buffer.from('json/plain').toString('base64'));

    const auditorAccess = (await accessesOf(digest(payload))).find(
      (e) => e.outcome === 'success' && e.details.via === 'bearer',
    );
    expect(auditorAccess?.principal).toMatchObject({ id: 'Demo Auditor', role: 'auditor' });
    const anonymous = (await accessesOf(digest(payload))).filter(
      (e) => e.outcome === 'denied' && e.details.via === 'none' && e.details.origin === null,
    );
    expect(anonymous.length).toBeGreaterThan(0);
  });
});

describe('the production codec server: https, bearer grants and client certificates', () => {
  let server: RunningCodecServer;
  let serverCert: string;
  let authority: StewardAuthority;
  let revokedOps: Identity;

  beforeAll(async () => {
    const dir = await tempDir('steward-codec-tls-');
    // The operator's own TLS certificate for the codec server's host name.
    execFileSync('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-subj',
      '/CN=codec.test',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-days',
      '1',
      '-keyout',
      path.join(dir, 'key.pem'),
      '-out',
      path.join(dir, 'cert.pem'),
    ]);
    serverCert = await readFile(path.join(dir, 'cert.pem'), 'utf8');
    const pkiDir = path.join(stackState().dataDir, 'pki');
    authority = await StewardAuthority.open(pkiDir, clients().keys);
    const issued = await authority.issue('Olaf Offboarded', 'ops', 30);
    await writeIdentity(path.join(dir, 'olaf'), { ...issued, caPem: authority.caPem() }, 'olaf passphrase');
    revokedOps = openIdentity(path.join(dir, 'olaf'), 'olaf passphrase');
    await authority.revoke(issued.info.serial, 'left the team', new Date());
    server = await startCodecServer({
      keys: clients().keys,
      pkiDir,
      jurisdiction: codecState().auditJurisdiction,
      uiOrigins: ['https://temporal.example.com'],
      temporal: stackState().temporal,
      host: '127.0.0.1',
      port: 0,
      tls: {
        cert: serverCert,
        key: await readFile(path.join(dir, 'key.pem'), 'utf8'),
        requestClientCertificate: true,
      },
    });
  });

  afterAll(async () => {
    await server?.close();
  });

  /** A decode request over TLS, trusting only the server's certificate; optionally with a client certificate. */
  function decode(options: { bearer?: string; client?: Identity }): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const request = https.request(
        {
          host: '127.0.0.1',
          port: server.port,
          path: '/decode',
          method: 'POST',
          ca: serverCert,
          headers: {
            'content-type': 'application/json',
            'x-namespace': 'default',
            ...(options.bearer ? { authorization: `Bearer ${options.bearer}` } : {}),
          },
          ...(options.client
            ? {
                cert: options.client.certificatePem,
                key: options.client.key.export({ type: 'pkcs8', format: 'pem' }),
              }
            : {}),
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (c: Buffer) => chunks.push(c));
          response.on('end', () =>
            resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
          );
        },
      );
      request.on('error', reject);
      request.end(JSON.stringify({ payloads: [payload] }));
    });
  }

  it('decodes for an auditor or ops bearer grant and refuses a steward, a revoked, an expired and a forged grant', async () => {
    const j = codecState().auditJurisdiction;
    const auditor = await decode({ bearer: issueCodecGrant(identity('auditor'), { jurisdiction: j, hours: 1 }).token });
    expect(auditor.status).toBe(200);
    expect(decodedJson(auditor.text)).toEqual(plaintext);
    expect(
      (await decode({ bearer: issueCodecGrant(identity('ops'), { jurisdiction: j, hours: 1 }).token })).status,
    ).toBe(200);

    const steward = await decode({ bearer: issueCodecGrant(identity('steward'), { jurisdiction: j, hours: 1 }).token });
    expect(steward).toEqual({
      status: 403,
      text: 'access denied: Demo Steward (role steward) may not codec.decode; allowed roles: ops, auditor',
    });
    const revoked = await decode({ bearer: issueCodecGrant(revokedOps, { jurisdiction: j, hours: 1 }).token });
    expect(revoked.status).toBe(403);
    expect(revoked.text).toMatch(/^the certificate [0-9a-f]+ is revoked$/);

    const past = new Date(Date.now() - 60_000).toISOString();
    const expired = signRequest(identity('ops'), {
      requestId: `codec-${'e'.repeat(32)}`,
      action: 'codec.decode',
      jurisdiction: j,
      issuedAt: new Date(Date.now() - 3_600_000).toISOString(),
      meaning: 'read workflow payloads in the clear through the codec server',
      params: { grantId: 'e'.repeat(32), expiresAt: past },
    });
    const expiredAnswer = await decode({ bearer: Buffer.from(JSON.stringify(expired)).toString('base64url') });
    expect(expiredAnswer).toEqual({ status: 403, text: `the grant expired at ${past}` });

    const genuine = issueCodecGrant(identity('ops'), { jurisdiction: j, hours: 1 });
    const forged = {
      ...genuine.request,
      body: genuine.request.body.replace(/"expiresAt":"[^"]+"/, '"expiresAt":"2999-01-01T00:00:00.000Z"'),
    };
    const forgedAnswer = await decode({ bearer: Buffer.from(JSON.stringify(forged)).toString('base64url') });
    expect(forgedAnswer.status).toBe(403);
    expect(forgedAnswer.text).toContain('the signature does not verify');
    expect((await decode({ bearer: 'not-a-grant' })).status).toBe(403);
    expect((await decode({})).status).toBe(401);
  });

  it('accepts an ops client certificate from the Steward CA and refuses a steward or revoked one', async () => {
    const ops = await decode({ client: identity('ops') });
    expect(ops.status).toBe(200);
    expect(decodedJson(ops.text)).toEqual(plaintext);
    const steward = await decode({ client: identity('steward') });
    expect(steward.status).toBe(403);
    expect(steward.text).toContain('may not codec.decode');
    const revoked = await decode({ client: revokedOps });
    expect(revoked.status).toBe(403);
    expect(revoked.text).toMatch(/is revoked$/);

    const viaCertificate = (await accessesOf(digest(payload))).filter((e) => e.details.via === 'client-certificate');
    expect(viaCertificate.map((e) => [e.outcome, e.principal?.id])).toEqual([
      ['success', 'Demo Ops'],
      ['denied', 'Demo Steward'],
      ['denied', 'Olaf Offboarded'],
    ]);
  });
});

describe('the codec commands', () => {
  const steward = stackSteward;
  const identityDir = (role: string) => path.join(stackState().dataDir, 'identities', role);

  it('codec grant signs a token for ops, refuses a steward; codec-server refuses to listen off loopback without TLS', async () => {
    const granted = steward('--identity', identityDir('ops'), '--json', 'codec', 'grant', '--hours', '1');
    expect(granted.code, granted.stderr).toBe(0);
    const { token, grantId } = JSON.parse(granted.stdout) as { token: string; grantId: string };
    const viaToken = await post(
      `${codecState().url}/decode`,
      { payloads: [payload] },
      { authorization: `Bearer ${token}` },
    );
    expect(viaToken.status).toBe(200);
    // The grant file the command kept serves the Web UI's URL form too.
    expect((await post(`${codecState().url}/grant/${grantId}/decode`, { payloads: [payload] })).status).toBe(200);

    // Issuing a grant is audited: the command's, and the one `steward up` made for the Web UI, each named by its
    // fingerprint (the id opens the codec, so the trail never holds it).
    const uiGrantId = codecState().uiEndpoint.split('/').at(-1)!;
    const issued = (await sealedEvents(clients(), codecState().auditJurisdiction))
      .map((e) => e.event)
      .filter((e) => e.action === 'codec.granted');
    expect(JSON.stringify(issued)).not.toContain(grantId);
    expect(issued.find((e) => e.details.grant === grantFingerprint(grantId))?.principal).toMatchObject({
      id: 'Demo Ops',
      role: 'ops',
    });
    expect(issued.find((e) => e.details.grant === grantFingerprint(uiGrantId))?.principal).toMatchObject({
      id: 'Demo Ops',
      role: 'ops',
    });

    const refused = steward('--identity', identityDir('steward'), 'codec', 'grant');
    expect(refused.code).toBe(6);
    expect(refused.stderr).toContain('may not decode payloads: ops or auditor only');

    const open = steward('codec-server', '--listen', '0.0.0.0:0');
    expect(open.code).toBe(2);
    expect(open.stderr).toContain('off loopback the codec server needs TLS');
  });

  it('codec locate names the workflow, run and event of a recorded digest', () => {
    const located = steward('--json', 'codec', 'locate', digest(payload), '--query', `StudyId="${STUDY}"`);
    expect(located.code, located.stderr).toBe(0);
    expect(JSON.parse(located.stdout)).toContainEqual(expect.objectContaining({ workflowId, eventId: '1' }));
    const unknown = steward('codec', 'locate', '0123456789abcdef', '--query', `StudyId="${STUDY}"`);
    expect(unknown.code).toBe(4);
    expect(steward('codec', 'locate', 'not-a-digest').code).toBe(2);
  });
});
