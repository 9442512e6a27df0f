import { mkdtemp, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { defaultPayloadConverter } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { AesGcmPayloadCodec } from '../../lib/crypto/codec';
import { FileKeyStore } from '../../lib/crypto/keystore';

async function store() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'steward-keys-'));
  return { dir, keys: await FileKeyStore.open(dir) };
}

describe('payload codec', () => {
  it('encrypts payloads with the key id in metadata and decrypts them back', async () => {
    const { keys } = await store();
    const codec = new AesGcmPayloadCodec(keys);
    const plain = defaultPayloadConverter.toPayload({ subject: 'SUBJ-SECRET-0001', note: 'Jane Doe' });
    const [encoded] = await codec.encode([plain]);
    expect(Buffer.from(encoded!.metadata!.encoding!).toString()).toBe('binary/encrypted');
    expect(Buffer.from(encoded!.metadata!['encryption-key-id']!).toString()).toBe('payload/v1');
    expect(Buffer.from(encoded!.data!).includes(Buffer.from('SUBJ-SECRET'))).toBe(false);
    const [decoded] = await codec.decode([encoded!]);
    expect(defaultPayloadConverter.fromPayload(decoded!)).toEqual({ subject: 'SUBJ-SECRET-0001', note: 'Jane Doe' });
  });

  it('refuses tampered ciphertext', async () => {
    const { keys } = await store();
    const codec = new AesGcmPayloadCodec(keys);
    const [encoded] = await codec.encode([defaultPayloadConverter.toPayload('x')]);
    const data = Buffer.from(encoded!.data!);
    data[data.length - 1] = data[data.length - 1]! ^ 1;
    await expect(codec.decode([{ ...encoded!, data }])).rejects.toThrow(/unable to authenticate/i);
  });
});

describe('file key store', () => {
  it('creates one key per study on first use, stable across opens, sealed at rest with mode 0600', async () => {
    const { dir, keys } = await store();
    const a = await keys.studyKey('eu', 'ST-1');
    const again = await (await FileKeyStore.open(dir)).studyKey('eu', 'ST-1');
    expect(again.material.equals(a.material)).toBe(true);
    expect(a.version).toBe(1);
    expect((await keys.studyKey('eu', 'ST-2')).material.equals(a.material)).toBe(false);
    expect((await keys.studyKey('us', 'ST-1')).material.equals(a.material)).toBe(false);
    const file = path.join(dir, 'study', 'eu', 'ST-1', 'v1.json');
    const text = await readFile(file, 'utf8');
    expect(text.includes(a.material.toString('hex'))).toBe(false);
    expect(text.includes(a.material.toString('base64'))).toBe(false);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(path.join(dir, 'master.key'))).mode & 0o777).toBe(0o600);
  });

  it('concurrent first uses agree on one key', async () => {
    const { dir } = await store();
    const opened = await Promise.all([FileKeyStore.open(dir), FileKeyStore.open(dir), FileKeyStore.open(dir)]);
    const handles = await Promise.all(opened.map((k) => k.studyKey('eu', 'RACE')));
    expect(new Set(handles.map((h) => h.material.toString('hex'))).size).toBe(1);
    expect(await readdir(path.join(dir, 'study', 'eu', 'RACE'))).toEqual(['v1.json']);
  });

  it('rotates (retiring older versions, idempotently) and destroys a version for good', async () => {
    const { dir, keys } = await store();
    const v1 = await keys.studyKey('eu', 'ROT');
    const v2 = await keys.rotateStudyKey('eu', 'ROT', 1);
    expect(v2.version).toBe(2);
    expect(v2.material.equals(v1.material)).toBe(false);
    expect((await keys.rotateStudyKey('eu', 'ROT', 1)).material.equals(v2.material)).toBe(true);
    expect((await keys.studyKey('eu', 'ROT')).version).toBe(2);
    expect((await keys.studyKeyVersions('eu', 'ROT')).map((k) => [k.version, k.state])).toEqual([
      [1, 'retired'],
      [2, 'active'],
    ]);
    expect((await keys.liveStudyKeys('eu', 'ROT')).map((k) => k.version)).toEqual([1, 2]);

    await keys.destroyStudyKey('eu', 'ROT', 1);
    const reopened = await FileKeyStore.open(dir);
    expect((await reopened.liveStudyKeys('eu', 'ROT')).map((k) => k.version)).toEqual([2]);
    await expect(reopened.studyKeyVersion('eu', 'ROT', 1)).rejects.toThrowErrorMatchingInlineSnapshot(
      `[KeyStoreError: key study/eu/ROT/v1 was destroyed]`,
    );
    await expect(keys.studyKeyVersion('eu', 'ROT', 1)).rejects.toThrow('was destroyed');
    // The sealed material itself is gone from the file, not just marked.
    const file = JSON.parse(await readFile(path.join(dir, 'study', 'eu', 'ROT', 'v1.json'), 'utf8'));
    expect(file).toMatchObject({ state: 'destroyed', sealed: '' });
  });

  it('a key another process destroys is refused here too, though this process had it in memory', async () => {
    const { dir, keys } = await store();
    await keys.studyKey('eu', 'XPROC');
    await keys.rotateStudyKey('eu', 'XPROC', 1);
    expect((await keys.studyKeyVersion('eu', 'XPROC', 1)).version).toBe(1);
    const other = await FileKeyStore.open(dir);
    await other.destroyStudyKey('eu', 'XPROC', 1);
    await expect(keys.studyKeyVersion('eu', 'XPROC', 1)).rejects.toThrow('key study/eu/XPROC/v1 was destroyed');
    expect((await keys.liveStudyKeys('eu', 'XPROC')).map((k) => k.version)).toEqual([2]);
  });

  it('keeps other secrets sealed, the first stored winning', async () => {
    const { dir, keys } = await store();
    expect(await keys.secret('pki/ca')).toBeUndefined();
    const first = await keys.storeSecret('pki/ca', Buffer.from('first'));
    const second = await (await FileKeyStore.open(dir)).storeSecret('pki/ca', Buffer.from('second'));
    expect([first.toString(), second.toString()]).toEqual(['first', 'first']);
    expect(await readFile(path.join(dir, 'secrets', 'pki--ca.json'), 'utf8')).not.toContain('first');
    await expect(keys.secret('../escape')).rejects.toThrow('"../escape" is not a secret id');
  });

  it('will not unseal with the wrong master key, and says so without key material', async () => {
    const { dir, keys } = await store();
    await keys.studyKey('eu', 'ST-1');
    await writeFile(path.join(dir, 'other.key'), '');
    const wrong = await FileKeyStore.open(dir, Buffer.alloc(32, 1).toString('base64'));
    await expect(wrong.studyKey('eu', 'ST-1')).rejects.toThrowErrorMatchingInlineSnapshot(
      `[KeyStoreError: key study/eu/ST-1/v1 cannot be unsealed: wrong master key or tampered key file]`,
    );
    await expect(FileKeyStore.open(dir, 'c2hvcnQ=')).rejects.toThrowErrorMatchingInlineSnapshot(
      `[KeyStoreError: the master key must be 32 bytes, base64-encoded]`,
    );
  });
});
