import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { KeyInfo } from '../../schemas/keys';
import { writeFileAtomic } from '../runtime/files';
import { open, seal } from './aead';

/** A secret key. `material` never leaves the process: not logged, not put in payloads or errors. */
export interface KeyHandle {
  readonly id: string;
  readonly version: number;
  readonly material: Buffer;
  /** Set on the handle of the call that created the key (for the audit trail). */
  readonly created?: boolean;
}

/** Where pseudonymization and payload keys live; the embedded default is `FileKeyStore`, a KMS can replace it. */
export interface KeyStore {
  /** Current key for pseudonymizing a study's identifiers; created (version 1) on first use. */
  studyKey(jurisdiction: string, studyId: string): Promise<KeyHandle>;
  /** A specific version of a study key, for lookups of data keyed under older versions. */
  studyKeyVersion(jurisdiction: string, studyId: string, version: number): Promise<KeyHandle>;
  /** Every version not destroyed, oldest first: token look-ups try each. */
  liveStudyKeys(jurisdiction: string, studyId: string): Promise<KeyHandle[]>;
  /** Every study of the jurisdiction that has keys (any state), sorted. */
  studies(jurisdiction: string): Promise<string[]>;
  /** Versions and states of a study's keys, without material. */
  studyKeyVersions(jurisdiction: string, studyId: string): Promise<KeyInfo[]>;
  /**
   * Makes version `fromVersion + 1` the current key and retires the older ones. Idempotent: when the current version is
   * already past `fromVersion`, nothing changes and the current key is returned.
   */
  rotateStudyKey(jurisdiction: string, studyId: string, fromVersion: number): Promise<KeyHandle>;
  /** Destroys a key version's material (cryptographic erase); tokens made with it can no longer be computed. */
  destroyStudyKey(jurisdiction: string, studyId: string, version: number): Promise<void>;
  /** The key sealing a study's re-identification vault entries; created on first use. */
  vaultKey(jurisdiction: string, studyId: string): Promise<KeyHandle>;
  /** The key that encrypts Temporal payloads; created on first use. */
  payloadKey(): Promise<KeyHandle>;
  /** A payload key by id, to decrypt payloads written under earlier keys. */
  payloadKeyById(id: string): Promise<KeyHandle>;
  /**
   * Keeps other secret material (a signing key) under an id, sealed. Creating is exclusive: when the id exists, the
   * stored material is kept and returned, so concurrent first starts agree on one.
   */
  storeSecret(id: string, material: Buffer): Promise<Buffer>;
  /** Secret material stored under an id; undefined when none is. */
  secret(id: string): Promise<Buffer | undefined>;
}

export type { KeyInfo } from '../../schemas/keys';

const SealedKeySchema = z.object({
  format: z.literal('steward-key/1'),
  id: z.string(),
  version: z.number().int().positive(),
  state: z.enum(['active', 'retired', 'destroyed']),
  createdAt: z.string(),
  /** AES-256-GCM under the master key: base64 of iv(12) | tag(16) | ciphertext. */
  sealed: z.string(),
});

const SealedSecretSchema = z.object({
  format: z.literal('steward-secret/1'),
  id: z.string(),
  createdAt: z.string(),
  sealed: z.string(),
});

export class KeyStoreError extends Error {
  override readonly name = 'KeyStoreError';
}

const SAFE_SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function sealKey(master: Buffer, plain: Buffer, aad: string): string {
  return seal(master, plain, aad).toString('base64');
}

function unsealKey(master: Buffer, sealed: string, aad: string): Buffer {
  return open(master, Buffer.from(sealed, 'base64'), aad);
}

/**
 * Key store in a directory, one file per key version, each key sealed with AES-256-GCM under a master key.
 * Keys are created with exclusive file creation, so concurrent processes agree on one key.
 */
export class FileKeyStore implements KeyStore {
  /** Unsealed keys by id, with the file's identity when read: another process's rotation or destruction shows. */
  private readonly cache = new Map<string, { handle: KeyHandle; ino: number; mtimeMs: number }>();

  private constructor(
    private readonly dir: string,
    private readonly master: Buffer,
  ) {}

  /**
   * Opens the store under `dir`. The master key comes from `masterKey` (base64, 32 bytes, e.g. STEWARD_MASTER_KEY)
   * or from `dir/master.key`, generated with mode 0600 on first use.
   */
  static async open(dir: string, masterKey?: string): Promise<FileKeyStore> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    let master: Buffer;
    if (masterKey) {
      master = Buffer.from(masterKey, 'base64');
      if (master.length !== 32) throw new KeyStoreError('the master key must be 32 bytes, base64-encoded');
    } else {
      const file = path.join(dir, 'master.key');
      try {
        await writeFile(file, randomBytes(32).toString('base64'), { flag: 'wx', mode: 0o600 });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      master = Buffer.from((await readFile(file, 'utf8')).trim(), 'base64');
      if (master.length !== 32) throw new KeyStoreError(`${file} does not hold a 32-byte base64 master key`);
    }
    return new FileKeyStore(dir, master);
  }

  async studyKey(jurisdiction: string, studyId: string): Promise<KeyHandle> {
    const dir = this.studyDir(jurisdiction, studyId);
    const versions = await this.versions(dir);
    const current = versions.at(-1) ?? 1;
    const handle = await this.loadOrCreate(dir, `study/${jurisdiction}/${studyId}`, current, versions.length === 0);
    return handle;
  }

  async studyKeyVersion(jurisdiction: string, studyId: string, version: number): Promise<KeyHandle> {
    return this.loadOrCreate(this.studyDir(jurisdiction, studyId), `study/${jurisdiction}/${studyId}`, version, false);
  }

  async studyKeyVersions(jurisdiction: string, studyId: string): Promise<KeyInfo[]> {
    const dir = this.studyDir(jurisdiction, studyId);
    const infos: KeyInfo[] = [];
    for (const version of await this.versions(dir)) {
      const sealed = SealedKeySchema.parse(JSON.parse(await readFile(path.join(dir, `v${version}.json`), 'utf8')));
      infos.push({ id: sealed.id, version, state: sealed.state, createdAt: sealed.createdAt });
    }
    return infos;
  }

  async liveStudyKeys(jurisdiction: string, studyId: string): Promise<KeyHandle[]> {
    const live = (await this.studyKeyVersions(jurisdiction, studyId)).filter((k) => k.state !== 'destroyed');
    if (live.length === 0) return [await this.studyKey(jurisdiction, studyId)];
    return Promise.all(live.map((k) => this.studyKeyVersion(jurisdiction, studyId, k.version)));
  }

  async studies(jurisdiction: string): Promise<string[]> {
    if (!SAFE_SEGMENT.test(jurisdiction)) throw new KeyStoreError('jurisdiction must be a short name');
    try {
      return (await readdir(path.join(this.dir, 'study', jurisdiction))).filter((n) => SAFE_SEGMENT.test(n)).sort();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  }

  async rotateStudyKey(jurisdiction: string, studyId: string, fromVersion: number): Promise<KeyHandle> {
    const dir = this.studyDir(jurisdiction, studyId);
    const name = `study/${jurisdiction}/${studyId}`;
    const versions = await this.versions(dir);
    const current = versions.at(-1) ?? 0;
    if (current > fromVersion) return this.loadOrCreate(dir, name, current, false);
    const next = await this.loadOrCreate(dir, name, fromVersion + 1, true);
    for (const version of versions) await this.setState(dir, version, 'retired');
    return next;
  }

  async destroyStudyKey(jurisdiction: string, studyId: string, version: number): Promise<void> {
    const dir = this.studyDir(jurisdiction, studyId);
    await this.setState(dir, version, 'destroyed');
    this.cache.delete(`study/${jurisdiction}/${studyId}/v${version}`);
  }

  /** Rewrites a key file's state atomically (write, then rename); destroying also discards the sealed material. */
  private async setState(dir: string, version: number, state: 'retired' | 'destroyed'): Promise<void> {
    const file = path.join(dir, `v${version}.json`);
    const sealed = SealedKeySchema.parse(JSON.parse(await readFile(file, 'utf8')));
    if (sealed.state === state || sealed.state === 'destroyed') return;
    const next = { ...sealed, state, sealed: state === 'destroyed' ? '' : sealed.sealed };
    await writeFileAtomic(file, JSON.stringify(next, null, 2), 0o600);
  }

  async vaultKey(jurisdiction: string, studyId: string): Promise<KeyHandle> {
    this.studyDir(jurisdiction, studyId);
    const dir = path.join(this.dir, 'vault', jurisdiction, studyId);
    const versions = await this.versions(dir);
    return this.loadOrCreate(dir, `vault/${jurisdiction}/${studyId}`, versions.at(-1) ?? 1, versions.length === 0);
  }

  async payloadKey(): Promise<KeyHandle> {
    const dir = path.join(this.dir, 'payload');
    const versions = await this.versions(dir);
    return this.loadOrCreate(dir, 'payload', versions.at(-1) ?? 1, versions.length === 0);
  }

  async payloadKeyById(id: string): Promise<KeyHandle> {
    const match = /^payload\/v(\d+)$/.exec(id);
    if (!match) throw new KeyStoreError(`unknown payload key id "${id}"`);
    return this.loadOrCreate(path.join(this.dir, 'payload'), 'payload', Number(match[1]), false);
  }

  async storeSecret(id: string, material: Buffer): Promise<Buffer> {
    const file = this.secretFile(id);
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const sealed = {
      format: 'steward-secret/1',
      id,
      createdAt: new Date().toISOString(),
      sealed: sealKey(this.master, material, `secret/${id}`),
    };
    try {
      await writeFile(file, JSON.stringify(sealed, null, 2), { flag: 'wx', mode: 0o600 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    return (await this.secret(id))!;
  }

  async secret(id: string): Promise<Buffer | undefined> {
    let text: string;
    try {
      text = await readFile(this.secretFile(id), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const parsed = SealedSecretSchema.safeParse(JSON.parse(text));
    if (!parsed.success || parsed.data.id !== id) throw new KeyStoreError(`secret ${id} is malformed`);
    try {
      return unsealKey(this.master, parsed.data.sealed, `secret/${id}`);
    } catch {
      throw new KeyStoreError(`secret ${id} cannot be unsealed: wrong master key or tampered file`);
    }
  }

  private secretFile(id: string): string {
    if (!/^[a-z0-9][a-z0-9._-]*(\/[a-z0-9][a-z0-9._-]*)*$/.test(id))
      throw new KeyStoreError(`"${id}" is not a secret id`);
    return path.join(this.dir, 'secrets', `${id.replaceAll('/', '--')}.json`);
  }

  private studyDir(jurisdiction: string, studyId: string): string {
    if (!SAFE_SEGMENT.test(jurisdiction) || !SAFE_SEGMENT.test(studyId)) {
      throw new KeyStoreError('jurisdiction and study id must be short names of letters, digits, ".", "_" or "-"');
    }
    return path.join(this.dir, 'study', jurisdiction, studyId);
  }

  private async versions(dir: string): Promise<number[]> {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    return names
      .map((name) => /^v(\d+)\.json$/.exec(name)?.[1])
      .filter((v): v is string => v !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  }

  private async loadOrCreate(dir: string, name: string, version: number, create: boolean): Promise<KeyHandle> {
    const id = `${name}/v${version}`;
    const file = path.join(dir, `v${version}.json`);
    const cached = this.cache.get(id);
    if (cached) {
      // A key another process destroyed (its file rewritten) must not live on in this one's memory.
      const now = await stat(file).catch(() => undefined);
      if (now && now.ino === cached.ino && now.mtimeMs === cached.mtimeMs) return cached.handle;
      this.cache.delete(id);
    }
    let created = false;
    if (create) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const sealedKey = {
        format: 'steward-key/1',
        id,
        version,
        state: 'active',
        createdAt: new Date().toISOString(),
        sealed: sealKey(this.master, randomBytes(32), id),
      } satisfies z.infer<typeof SealedKeySchema>;
      try {
        await writeFile(file, JSON.stringify(sealedKey, null, 2), { flag: 'wx', mode: 0o600 });
        created = true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
    }
    let text: string;
    let identity: { ino: number; mtimeMs: number };
    try {
      identity = await stat(file);
      text = await readFile(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new KeyStoreError(`key ${id} does not exist`);
      throw error;
    }
    const parsed = SealedKeySchema.safeParse(JSON.parse(text));
    if (!parsed.success || parsed.data.id !== id) throw new KeyStoreError(`key file for ${id} is malformed`);
    if (parsed.data.state === 'destroyed') throw new KeyStoreError(`key ${id} was destroyed`);
    let material: Buffer;
    try {
      material = unsealKey(this.master, parsed.data.sealed, id);
    } catch {
      throw new KeyStoreError(`key ${id} cannot be unsealed: wrong master key or tampered key file`);
    }
    const handle: KeyHandle = { id, version, material };
    this.cache.set(id, { handle, ino: identity.ino, mtimeMs: identity.mtimeMs });
    return created ? { ...handle, created } : handle;
  }
}
