import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { defaultPayloadConverter } from '@temporalio/common';
import { beforeAll, describe, expect, it } from 'vitest';
import { headHash, sealSegment, tailProblems, ZERO_HASH } from '../../lib/audit/segment';
import { storageProblems } from '../../lib/audit/store';
import { openMessage, sealMessage } from '../../lib/auth/messages';
import { AesGcmPayloadCodec, REFUSED_PAYLOAD_FIELD } from '../../lib/crypto/codec';
import { FileKeyStore } from '../../lib/crypto/keystore';
import { openSealed, sealTo } from '../../lib/crypto/sealed-box';
import { StewardAuthority } from '../../lib/pki/authority';
import { openIdentity, writeIdentity, type Identity } from '../../lib/pki/identity';
import type { AuditEvent } from '../../schemas/audit';
import type { InternalMessage } from '../../schemas/message';
import { tempDir } from '../helpers';

let keys: FileKeyStore;
let authority: StewardAuthority;
let dpo: Identity;
let ops: Identity;

beforeAll(async () => {
  const dir = await tempDir('steward-trust-');
  keys = await FileKeyStore.open(path.join(dir, 'keys'));
  authority = await StewardAuthority.open(path.join(dir, 'pki'), keys);
  for (const [name, role] of [
    ['dpo', 'dpo'],
    ['ops', 'ops'],
  ] as const) {
    const issued = await authority.issue(`Demo ${name}`, role, 30);
    await writeIdentity(path.join(dir, name), { ...issued, caPem: authority.caPem() }, 'a long passphrase');
  }
  dpo = openIdentity(path.join(dir, 'dpo'), 'a long passphrase');
  ops = openIdentity(path.join(dir, 'ops'), 'a long passphrase');
});

describe('internal messages', () => {
  const key = randomBytes(32);
  const expect_ = { kind: 'catalog.change' as const, to: 'catalog-writer-eu-datasets-all', jurisdiction: 'eu' };
  const message = (): InternalMessage =>
    sealMessage(key, {
      kind: 'catalog.change',
      jurisdiction: 'eu',
      from: { workflowId: 'legal-hold-eu-r1', runId: 'run-1' },
      to: 'catalog-writer-eu-datasets-all',
      id: 'change-1',
      issuedAt: '2026-12-03T10:00:00.000Z',
      body: { mutation: { kind: 'hold.released' } },
    });

  it('opens a message sealed with the key, for its receiver, kind and jurisdiction', () => {
    expect(openMessage(key, message(), expect_)).toEqual({ ok: true });
  });

  it('refuses a message altered in any field, sealed with another key, or meant for another', () => {
    const reasons = [
      { ...message(), body: { mutation: { kind: 'hold.set' } } },
      { ...message(), from: { workflowId: 'legal-hold-eu-r2', runId: 'run-1' } },
      { ...message(), id: 'change-2' },
      { ...message(), issuedAt: '2026-12-03T10:00:01.000Z' },
      sealMessage(randomBytes(32), { ...message() }),
    ].map((m) => openMessage(key, m, expect_));
    for (const verdict of reasons) {
      expect(verdict).toEqual({
        ok: false,
        reason: 'the seal does not verify: the message was not sealed by a worker of eu, or was altered',
      });
    }
    expect(openMessage(key, message(), { ...expect_, to: 'catalog-writer-eu-vault-ST-1' })).toEqual({
      ok: false,
      reason: 'the message is meant for another workflow',
    });
    expect(openMessage(key, message(), { ...expect_, kind: 'audit.append' })).toEqual({
      ok: false,
      reason: 'a catalog.change message where audit.append is due',
    });
    expect(openMessage(key, message(), { ...expect_, jurisdiction: 'us' })).toEqual({
      ok: false,
      reason: 'the message is for jurisdiction eu',
    });
    for (const garbage of [null, 'x', [], { ...message(), mac: 'short' }, { requestId: 'r', mutation: {} }]) {
      expect(openMessage(key, garbage, expect_)).toEqual({ ok: false, reason: 'not a sealed Steward message' });
    }
  });
});

describe("a worker's payload codec", () => {
  const refusal = (payload: Parameters<typeof defaultPayloadConverter.fromPayload>[0]) =>
    defaultPayloadConverter.fromPayload(payload) as Record<string, unknown>;

  it('turns a clear, doubly encrypted or undecryptable payload into a refusal marker, not an error', async () => {
    const worker = new AesGcmPayloadCodec(keys, { refuseUnencrypted: true });
    const client = new AesGcmPayloadCodec(keys);
    const clear = defaultPayloadConverter.toPayload({ request: 'forged' });
    const twice = (await client.encode(await client.encode([clear])))[0]!;
    const [once] = await client.encode([clear]);
    const garbage = { ...once!, data: Buffer.from('not ciphertext') };
    const decoded = await worker.decode([clear, twice, garbage, once!]);
    expect(decoded.slice(0, 3).map((p) => refusal(p)[REFUSED_PAYLOAD_FIELD])).toEqual([
      'a payload that is not encrypted',
      'a payload encrypted twice',
      'a payload that does not decrypt',
    ]);
    expect(defaultPayloadConverter.fromPayload(decoded[3]!)).toEqual({ request: 'forged' });
    // A client's codec reads what it is given, as before.
    expect(defaultPayloadConverter.fromPayload((await client.decode([clear]))[0]!)).toEqual({ request: 'forged' });
  });
});

describe('results sealed to a person', () => {
  it('only the requester’s key opens a sealed identifier, and the box does not hold it in the clear', () => {
    const box = sealTo(dpo.certificatePem, Buffer.from('EU-V1-100007'));
    expect(JSON.stringify(box)).not.toContain('EU-V1-100007');
    expect(box.recipient).toBe(dpo.info.fingerprint);
    expect(openSealed(dpo.key, box).toString()).toBe('EU-V1-100007');
    expect(() => openSealed(ops.key, box)).toThrow();
    const altered = { ...box, ciphertext: Buffer.from('x'.repeat(12)).toString('base64') };
    expect(() => openSealed(dpo.key, altered)).toThrow();
  });
});

describe('a trail cut short', () => {
  const event = (n: number): AuditEvent => ({
    id: `wf/run/${n}`,
    at: '2026-12-03T10:00:00.000Z',
    jurisdiction: 'eu',
    principal: null,
    action: 'audit.queried',
    outcome: 'success',
    targets: {},
    details: {},
  });

  it('is found by comparing storage with the live head; a delete marker or an overwrite is reported', async () => {
    const signer = await authority.signer('eu');
    const first = sealSegment({
      jurisdiction: 'eu',
      seq: 0,
      firstPosition: 0,
      prevEventHash: ZERO_HASH,
      prevSegmentHash: ZERO_HASH,
      sealedAt: '2026-12-03T10:00:00.000Z',
      events: [event(1)],
      signer,
    });
    const second = sealSegment({
      jurisdiction: 'eu',
      seq: 1,
      firstPosition: 1,
      prevEventHash: first.head.lastEventHash,
      prevSegmentHash: headHash(first.head),
      sealedAt: '2026-12-03T10:00:01.000Z',
      events: [event(2)],
      signer,
    });
    const head = {
      seq: 2,
      position: 2,
      prevEventHash: second.head.lastEventHash,
      prevSegmentHash: headHash(second.head),
    };
    expect(
      tailProblems(
        head,
        new Map<number, unknown>([
          [0, first],
          [1, second],
        ]),
      ),
    ).toEqual([]);
    expect(tailProblems(head, new Map<number, unknown>([[0, first]]))).toEqual([
      {
        segment: 1,
        position: 2,
        problem:
          'the live trail has sealed 2 segments (2 events) but storage holds segments up to 0: segments 1–1 are missing',
      },
    ]);
    expect(
      tailProblems(
        { ...head, prevSegmentHash: ZERO_HASH },
        new Map<number, unknown>([
          [0, first],
          [1, second],
        ]),
      ),
    ).toEqual([{ segment: 1, problem: 'is not the segment the live trail sealed under this number' }]);
    expect(tailProblems(undefined, new Map())).toEqual([]);
    expect(
      storageProblems([
        { seq: 0, versionId: 'a', versions: 1, deleteMarkers: 0 },
        { seq: 1, versionId: 'b', versions: 2, deleteMarkers: 1 },
      ]).map((p) => [p.segment, p.problem.split(':')[0]]),
    ).toEqual([
      [1, 'a delete marker was put on the segment (1)'],
      [1, "the segment's key holds 2 versions"],
    ]);
  });
});
