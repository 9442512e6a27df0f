import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../schemas/audit';
import { inclusionPath, leafHash, merkleRoot, verifyInclusion } from '../../lib/audit/merkle';
import { proveInclusion, sealSegment, verifyTrail, ZERO_HASH } from '../../lib/audit/segment';
import { signRequest, verifyRequest } from '../../lib/auth/request';
import { requestDifferences, signedInput } from '../../lib/client/request';
import { FileKeyStore } from '../../lib/crypto/keystore';
import { StewardAuthority, TrustAnchor } from '../../lib/pki/authority';
import { signDetached, verifyDetached } from '../../lib/pki/cms';
import { openIdentity, writeIdentity, type Identity } from '../../lib/pki/identity';
import { opensslCmsVerify, tempDir } from '../helpers';

let dir: string;
let authority: StewardAuthority;
let signer: { certificatePem: string; privateKeyPem: string };
let dpo: Identity;

beforeAll(async () => {
  dir = await tempDir('steward-pki-');
  const keys = await FileKeyStore.open(path.join(dir, 'keys'));
  authority = await StewardAuthority.open(path.join(dir, 'pki'), keys);
  signer = await authority.signer('eu');
  const issued = await authority.issue('Dana Müller', 'dpo', 365);
  await writeIdentity(path.join(dir, 'dana'), { ...issued, caPem: authority.caPem() }, 'correct horse');
  dpo = openIdentity(path.join(dir, 'dana'), 'correct horse');
});

describe('RFC 9162 Merkle trees', () => {
  const leaves = (n: number) => Array.from({ length: n }, (_, i) => leafHash(Buffer.from(`event ${i}`)));
  const h = (...parts: Buffer[]) => createHash('sha256').update(Buffer.concat(parts)).digest();

  it('hash small trees as the RFC defines them', () => {
    const [a, b, c] = leaves(3);
    expect(merkleRoot([])).toEqual(h());
    expect(merkleRoot([a!])).toEqual(a);
    expect(merkleRoot([a!, b!])).toEqual(h(Buffer.from([1]), a!, b!));
    // Three leaves split at the largest power of two below 3: (a, b) and (c).
    expect(merkleRoot([a!, b!, c!])).toEqual(h(Buffer.from([1]), h(Buffer.from([1]), a!, b!), c!));
  });

  it('prove every leaf of trees of 1 to 33 leaves, and nothing else', () => {
    for (let n = 1; n <= 33; n++) {
      const tree = leaves(n);
      const root = merkleRoot(tree);
      for (let m = 0; m < n; m++) {
        const proof = inclusionPath(tree, m);
        expect(verifyInclusion(tree[m]!, m, n, proof, root), `leaf ${m} of ${n}`).toBe(true);
        expect(verifyInclusion(leafHash(Buffer.from('forged')), m, n, proof, root)).toBe(false);
        if (n > 1) expect(verifyInclusion(tree[m]!, (m + 1) % n, n, proof, root)).toBe(false);
      }
    }
  });
});

describe('audit segments', () => {
  const sealedAt = new Date().toISOString();
  const event = (i: number): AuditEvent => ({
    id: `wf-1/run-1/${i}`,
    at: sealedAt,
    jurisdiction: 'eu',
    principal: { id: 'Sam Steward', role: 'steward' },
    action: 'object.written',
    outcome: 'success',
    targets: { datasetId: 'ds-eu-000000000000000000000001' },
    details: { n: i },
  });
  const trail = () => {
    const first = sealSegment({
      jurisdiction: 'eu',
      seq: 0,
      firstPosition: 0,
      prevEventHash: ZERO_HASH,
      prevSegmentHash: ZERO_HASH,
      sealedAt,
      events: [0, 1, 2, 3, 4].map(event),
      signer,
    });
    const second = sealSegment({
      jurisdiction: 'eu',
      seq: 1,
      firstPosition: 5,
      prevEventHash: first.head.lastEventHash,
      prevSegmentHash: createHash('sha256').update(JSON.stringify(first.head)).digest('hex'),
      sealedAt,
      events: [5, 6, 7].map(event),
      signer,
    });
    return [first, second];
  };
  const verify = (segments: unknown[]) =>
    verifyTrail(new Map(segments.map((s, i) => [i, s])), authority.caPem()).problems;

  it('seal deterministically, so a retried seal writes the same bytes', () => {
    expect(JSON.stringify(trail())).toBe(JSON.stringify(trail()));
  });

  it('report each kind of tampering with its position', () => {
    const [first] = trail();
    expect(verify([first])).toEqual([]);
    const clone = () => structuredClone(first!);

    const altered = clone();
    altered.entries[2]!.event.details = { n: 99 };
    expect(verify([altered]).map((p) => [p.position, p.problem])).toEqual([
      [
        2,
        'event does not match its chain hash: it was altered, or an event before it was removed, inserted or reordered',
      ],
      [undefined, 'its events do not match the signed Merkle root'],
    ]);

    const removed = clone();
    removed.entries.splice(1, 1);
    expect(verify([removed]).map((p) => p.position)).toContain(1);
    expect(verify([removed]).map((p) => p.problem)).toContain('holds 4 events, its signed head says 5');

    const inserted = clone();
    inserted.entries.splice(3, 0, { position: 3, hash: 'a'.repeat(64), event: event(42) });
    expect(verify([inserted])[0]).toMatchObject({ position: 3, eventId: 'wf-1/run-1/42' });

    const reordered = clone();
    [reordered.entries[1], reordered.entries[2]] = [reordered.entries[2]!, reordered.entries[1]!];
    expect(verify([reordered])[0]).toMatchObject({ position: 1, eventId: 'wf-1/run-1/2' });

    const head = clone();
    head.head.count = 4;
    expect(verify([head]).map((p) => p.problem)).toContain('the head signature does not verify: the head was altered');
  });

  it('report a removed or altered segment', () => {
    const [first, second] = trail();
    const third = sealSegment({
      jurisdiction: 'eu',
      seq: 2,
      firstPosition: 8,
      prevEventHash: second!.head.lastEventHash,
      prevSegmentHash: ZERO_HASH,
      sealedAt,
      events: [event(8)],
      signer,
    });
    const stored = new Map<number, unknown>([
      [0, first],
      [2, third],
    ]);
    expect(verifyTrail(stored, authority.caPem()).problems[0]).toEqual({
      segment: 1,
      position: 5,
      problem: 'segments 1–1 are missing',
    });
    const forged = new Map<number, unknown>([[0, { ...first, signature: Buffer.from('x').toString('base64') }]]);
    expect(verifyTrail(forged, authority.caPem()).problems).toEqual([
      { segment: 0, problem: 'the head signature does not verify: the head was altered' },
    ]);
  });

  it('prove one event without the others', async () => {
    const [first] = trail();
    const proof = proveInclusion(first!, 'wf-1/run-1/3', authority.caPem());
    const { verifyProof } = await import('../../lib/audit/segment');
    expect(verifyProof(proof, authority.caPem())).toEqual([]);
    expect(verifyProof({ ...proof, event: { ...proof.event, outcome: 'failure' } }, authority.caPem())).toEqual([
      'the event and its audit path do not lead to the signed Merkle root: the event was altered',
    ]);
    const foreign = await StewardAuthority.open(
      path.join(await tempDir(), 'pki'),
      await FileKeyStore.open(await tempDir()),
    );
    expect(verifyProof(proof, foreign.caPem())).toEqual([
      'signer certificate: the certificate was not issued by the Steward CA',
    ]);
  });
});

describe('signed requests', () => {
  const now = new Date();
  const minutesAgo = (m: number) => new Date(now.getTime() - m * 60_000).toISOString();
  const body = (overrides: Record<string, unknown> = {}) => ({
    requestId: 'req-000001',
    action: 'consent.withdraw' as const,
    jurisdiction: 'eu',
    issuedAt: minutesAgo(1),
    params: { studyId: 'S' },
    ...overrides,
  });
  const trust = async () => ({
    caPem: authority.caPem(),
    revoked: await new TrustAnchor(authority.dir).revoked(),
    now,
  });

  it('accept a genuine one, with its e-signature', async () => {
    const verdict = verifyRequest(
      signRequest(dpo, body({ meaning: 'withdraw consent' })),
      { action: 'consent.withdraw', jurisdiction: 'eu' },
      await trust(),
    );
    expect(verdict).toMatchObject({
      ok: true,
      principal: { id: 'Dana Müller', role: 'dpo' },
      eSignature: {
        printedName: 'Dana Müller',
        role: 'dpo',
        signedAt: minutesAgo(1),
        meaning: 'withdraw consent',
      },
    });
  });

  it('refuse each kind of bad request, saying why', async () => {
    const expectAction = { action: 'consent.withdraw' as const, jurisdiction: 'eu' };
    const reason = async (request: ReturnType<typeof signRequest>, action = expectAction) => {
      const verdict = verifyRequest(request, action, await trust());
      return verdict.ok ? 'accepted' : verdict.reason;
    };
    const genuine = signRequest(dpo, body());
    expect(await reason({ ...genuine, body: genuine.body.replace('"S"', '"T"') })).toBe(
      'the signature does not verify: the request was altered or signed by another key',
    );
    expect(await reason(genuine, { action: 'keys.rotate' as never, jurisdiction: 'eu' })).toBe(
      'the request asks for consent.withdraw, not keys.rotate',
    );
    expect(
      await reason(signRequest(dpo, body({ action: 'keys.rotate' })), {
        action: 'keys.rotate' as never,
        jurisdiction: 'eu',
      }),
    ).toBe('access denied: Dana Müller (role dpo) may not keys.rotate; allowed roles: steward');
    expect(await reason(signRequest(dpo, body({ issuedAt: minutesAgo(60) })))).toBe(
      `the request was signed at ${minutesAgo(60)}: too old to act on (replayed?)`,
    );
    const foreignAuthority = await StewardAuthority.open(
      path.join(await tempDir(), 'pki'),
      await FileKeyStore.open(await tempDir()),
    );
    const stranger = await foreignAuthority.issue('Eve', 'dpo', 365);
    const strangerDir = path.join(await tempDir(), 'eve');
    await writeIdentity(strangerDir, { ...stranger, caPem: foreignAuthority.caPem() }, 'pw');
    expect(await reason(signRequest(openIdentity(strangerDir, 'pw'), body()))).toBe(
      'the certificate was not issued by the Steward CA',
    );
    const revokedDir = path.join(dir, 'revoked');
    const issued = await authority.issue('Rex Revoked', 'dpo', 365);
    await writeIdentity(revokedDir, { ...issued, caPem: authority.caPem() }, 'pw');
    await authority.revoke(issued.info.serial, 'left the company', new Date());
    expect(await reason(signRequest(openIdentity(revokedDir, 'pw'), body()))).toBe(
      `the certificate ${issued.info.serial} is revoked`,
    );
  });

  it('under one request id, name what another request asks differently, never the values', async () => {
    const withdraw = (subjectId: string, meaning = 'withdraw all scopes') =>
      signedInput(dpo, {
        action: 'consent.withdraw',
        jurisdiction: 'eu',
        params: { studyId: 'S', subjectId, scopes: [] },
        requestId: 'req-000002',
        meaning,
      });
    const first = withdraw('ONC-204-0002');
    expect(requestDifferences(first, withdraw('ONC-204-0002').request)).toEqual([]);
    expect(requestDifferences(first, withdraw('ONC-204-0003').request)).toEqual(['params.subjectId']);
    expect(requestDifferences(first, withdraw('ONC-204-0003', 'withdraw one scope').request)).toEqual([
      'meaning',
      'params.subjectId',
    ]);
    const other = await authority.issue('Olga Other', 'dpo', 365);
    await writeIdentity(path.join(dir, 'olga'), { ...other, caPem: authority.caPem() }, 'olga passphrase');
    const byOlga = signedInput(openIdentity(path.join(dir, 'olga'), 'olga passphrase'), {
      action: 'consent.withdraw',
      jurisdiction: 'eu',
      params: { studyId: 'S', subjectId: 'ONC-204-0002', scopes: [] },
      requestId: 'req-000002',
      meaning: 'withdraw all scopes',
    });
    expect(requestDifferences(first, byOlga.request)).toEqual(['signer']);
    expect(requestDifferences({ state: {} }, first.request)).toEqual(['request']);
  });

  it('keep the key under its passphrase', () => {
    expect(() => openIdentity(path.join(dir, 'dana'), 'wrong')).toThrow(
      `the passphrase does not open ${path.join(dir, 'dana', 'private-key.pem')}`,
    );
  });
});

describe('interoperability with OpenSSL', () => {
  it('openssl accepts a detached CMS signature and rejects the content changed by one byte', async () => {
    const content = Buffer.from(JSON.stringify({ certificateId: 'cert-eu-1', deleted: 3 }));
    const p7s = signDetached(content, signer, [authority.caPem()]);
    const files = await tempDir('steward-cms-');
    await writeFile(path.join(files, 'cert.json'), content);
    await writeFile(path.join(files, 'cert.p7s'), p7s);
    await writeFile(path.join(files, 'tampered.json'), Buffer.from(content.toString().replace('3', '4')));
    const openssl = (contentFile: string) =>
      opensslCmsVerify({
        p7s: path.join(files, 'cert.p7s'),
        content: path.join(files, contentFile),
        ca: authority.caFile,
      });
    const genuine = openssl('cert.json');
    expect(genuine.status, genuine.stderr.toString()).toBe(0);
    expect(openssl('tampered.json').status).not.toBe(0);
    expect(verifyDetached(p7s, content).signerCertificatePem).toContain('BEGIN CERTIFICATE');
    expect(() => verifyDetached(p7s, Buffer.from(content.toString().replace('3', '4')))).toThrow(
      'the content does not match the signed message digest: it was changed after signing',
    );
  });

  it('openssl verifies the CRL against the CA', () => {
    const out = execFileSync('openssl', ['crl', '-in', authority.crlFile, '-CAfile', authority.caFile, '-noout'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    expect(out.toString()).toBe('');
    const text = execFileSync('openssl', ['crl', '-in', authority.crlFile, '-noout', '-text']).toString();
    expect(text).toContain('Issuer: CN = Steward CA, OU = ca, O = Steward');
  });
});
