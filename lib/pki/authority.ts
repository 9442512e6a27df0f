import { createPublicKey } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { Role } from '../../schemas/common';
import type { KeyStore } from '../crypto/keystore';
import { writeFileAtomic } from '../runtime/files';
import { createCrl, revokedSerials } from './crl';
import { certificateInfo, generateKeyPair, issueCertificate, type CertificateInfo } from './x509';

const CA_SECRET = 'pki/ca';
const IssuedSchema = z.object({
  serial: z.string(),
  name: z.string(),
  role: z.string(),
  fingerprint: z.string(),
  issuedAt: z.string(),
  notAfter: z.string(),
  revokedAt: z.string().nullable(),
  revocationReason: z.string().nullable(),
});
export type IssuedCertificate = z.infer<typeof IssuedSchema>;

export interface SignerMaterial {
  certificatePem: string;
  privateKeyPem: string;
}

async function writeExclusive(file: string, content: string): Promise<void> {
  try {
    await writeFile(file, content, { flag: 'wx', mode: 0o644 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
}

/**
 * The Steward CA and what it issued, in a directory: `ca.pem`, `crl.pem` (X.509 v2 CRL), `issued/<serial>.json`, and
 * the evidence signers' certificates `signers/<jurisdiction>.pem`. Private keys are sealed in the key store (master
 * key), never written in the clear. Created on first use; creation is exclusive, so concurrent first starts agree.
 */
export class StewardAuthority {
  private constructor(
    readonly dir: string,
    private readonly keys: KeyStore,
  ) {}

  static async open(dir: string, keys: KeyStore): Promise<StewardAuthority> {
    const authority = new StewardAuthority(dir, keys);
    await mkdir(path.join(dir, 'issued'), { recursive: true });
    await mkdir(path.join(dir, 'signers'), { recursive: true });
    await authority.ensureCa();
    return authority;
  }

  get caFile(): string {
    return path.join(this.dir, 'ca.pem');
  }

  get crlFile(): string {
    return path.join(this.dir, 'crl.pem');
  }

  caPem(): string {
    return readFileSync(this.caFile, 'utf8');
  }

  private async ensureCa(): Promise<void> {
    const key = (
      (await this.keys.secret(CA_SECRET)) ??
      (await this.keys.storeSecret(CA_SECRET, Buffer.from(generateKeyPair().privateKeyPem)))
    ).toString();
    if (!existsSync(this.caFile)) {
      const publicKeyPem = createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString();
      const pem = issueCertificate({
        commonName: 'Steward CA',
        unit: 'ca',
        publicKeyPem,
        validDays: 3650,
        ca: true,
        selfPrivateKeyPem: key,
      });
      await writeExclusive(this.caFile, pem);
    }
    if (!existsSync(this.crlFile)) await this.publishCrl();
  }

  private async caMaterial(): Promise<SignerMaterial> {
    const key = await this.keys.secret(CA_SECRET);
    if (!key) throw new Error('the Steward CA key is missing from the key store');
    return { certificatePem: this.caPem(), privateKeyPem: key.toString() };
  }

  /** Issues a certificate for a new key pair; returns both (the caller protects the key). */
  async issue(
    name: string,
    role: Role | 'signer',
    validDays: number,
  ): Promise<SignerMaterial & { info: CertificateInfo }> {
    const pair = generateKeyPair(2048);
    const certificatePem = issueCertificate({
      commonName: name,
      unit: role,
      publicKeyPem: pair.publicKeyPem,
      validDays,
      issuer: await this.caMaterial(),
    });
    const info = certificateInfo(certificatePem);
    const record: IssuedCertificate = {
      serial: info.serial,
      name: info.name,
      role,
      fingerprint: info.fingerprint,
      issuedAt: new Date().toISOString(),
      notAfter: info.notAfter.toISOString(),
      revokedAt: null,
      revocationReason: null,
    };
    await writeFile(path.join(this.dir, 'issued', `${info.serial}.json`), JSON.stringify(record, null, 2));
    return { certificatePem, privateKeyPem: pair.privateKeyPem, info };
  }

  async issued(): Promise<IssuedCertificate[]> {
    const names = (await readdir(path.join(this.dir, 'issued'))).filter((n) => n.endsWith('.json'));
    const records = await Promise.all(
      names.map(async (n) => IssuedSchema.parse(JSON.parse(await readFile(path.join(this.dir, 'issued', n), 'utf8')))),
    );
    return records.sort((a, b) => a.issuedAt.localeCompare(b.issuedAt));
  }

  /** Revokes a certificate by serial and publishes a new CRL. Revoking twice keeps the first revocation. */
  async revoke(serial: string, reason: string, at: Date): Promise<IssuedCertificate> {
    const file = path.join(this.dir, 'issued', `${serial.toLowerCase()}.json`);
    if (!existsSync(file)) throw new Error(`no certificate with serial ${serial} was issued by this CA`);
    const record = IssuedSchema.parse(JSON.parse(await readFile(file, 'utf8')));
    if (!record.revokedAt) {
      const updated = { ...record, revokedAt: at.toISOString(), revocationReason: reason };
      await writeFileAtomic(file, JSON.stringify(updated, null, 2));
      await this.publishCrl();
      return updated;
    }
    return record;
  }

  private async publishCrl(): Promise<void> {
    const revoked = (await this.issued())
      .filter((r) => r.revokedAt)
      .map((r) => ({ serial: r.serial, revokedAt: new Date(r.revokedAt!) }));
    const pem = await createCrl(await this.caMaterial(), revoked, new Date());
    await writeFileAtomic(this.crlFile, pem);
  }

  /**
   * The evidence signer of a jurisdiction (signs audit segments and deletion certificates): its key sealed in the key
   * store, its certificate under `signers/`. Issued on first use.
   */
  async signer(jurisdiction: string): Promise<SignerMaterial> {
    const secret = `pki/signer/${jurisdiction}`;
    const file = path.join(this.dir, 'signers', `${jurisdiction}.pem`);
    const stored = await this.keys.secret(secret);
    if (stored && existsSync(file))
      return { certificatePem: readFileSync(file, 'utf8'), privateKeyPem: stored.toString() };
    const issued = await this.issue(`Steward evidence signer ${jurisdiction}`, 'signer', 3650);
    const key = (await this.keys.storeSecret(secret, Buffer.from(issued.privateKeyPem))).toString();
    if (key === issued.privateKeyPem) await writeFile(file, issued.certificatePem);
    // Another process stored its key first: wait for its certificate.
    for (let i = 0; i < 100 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 50));
    return { certificatePem: readFileSync(file, 'utf8'), privateKeyPem: key };
  }
}

/**
 * What verifiers need from the PKI directory: the CA certificate and the serials its CRL revokes (signature checked),
 * re-read when the CRL file changes.
 */
export class TrustAnchor {
  private cached: { mtimeMs: number; revoked: Set<string> } | undefined;

  constructor(readonly dir: string) {}

  caPem(): string {
    return readFileSync(path.join(this.dir, 'ca.pem'), 'utf8');
  }

  async revoked(): Promise<Set<string>> {
    const file = path.join(this.dir, 'crl.pem');
    const mtimeMs = statSync(file).mtimeMs;
    if (!this.cached || this.cached.mtimeMs !== mtimeMs) {
      this.cached = { mtimeMs, revoked: await revokedSerials(readFileSync(file, 'utf8'), this.caPem()) };
    }
    return this.cached.revoked;
  }
}
