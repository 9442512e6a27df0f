import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes, type KeyObject } from 'node:crypto';
import { read } from 'read';
import { EXIT, UserError } from '../runtime/errors';
import type { StewardAuthority } from './authority';
import { certificateInfo, encryptPrivateKey, privateKey, type CertificateInfo } from './x509';

/**
 * An identity on disk: `certificate.pem` (X.509, role in the subject's OU), `private-key.pem` (PKCS#8, encrypted with
 * the holder's passphrase) and the `ca.pem` it chains to. The key file and the passphrase are two distinct
 * identification components (21 CFR 11.200(a)).
 */
export interface Identity {
  dir: string;
  certificatePem: string;
  key: KeyObject;
  info: CertificateInfo;
}

export const IDENTITY_FILES = { certificate: 'certificate.pem', key: 'private-key.pem', ca: 'ca.pem' } as const;
/** Demo identities only: the passphrase kept beside the key, so `npm start` works with no set-up. */
export const DEMO_PASSPHRASE_FILE = 'passphrase';

export async function writeIdentity(
  dir: string,
  material: { certificatePem: string; privateKeyPem: string; caPem: string },
  passphrase: string,
  options: { demo?: boolean } = {},
): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(path.join(dir, IDENTITY_FILES.certificate), material.certificatePem);
  await writeFile(path.join(dir, IDENTITY_FILES.key), encryptPrivateKey(material.privateKeyPem, passphrase), {
    mode: 0o600,
  });
  await writeFile(path.join(dir, IDENTITY_FILES.ca), material.caPem);
  if (options.demo) await writeFile(path.join(dir, DEMO_PASSPHRASE_FILE), passphrase, { mode: 0o600 });
}

/**
 * The passphrase of an identity: `STEWARD_PASSPHRASE`, else a demo identity's passphrase file, else asked for on the
 * terminal (not echoed); without a terminal, an error saying how to give it.
 */
export async function passphraseFor(dir: string, env = process.env): Promise<string> {
  if (env.STEWARD_PASSPHRASE) return env.STEWARD_PASSPHRASE;
  const demo = path.join(dir, DEMO_PASSPHRASE_FILE);
  if (existsSync(demo)) return readFileSync(demo, 'utf8').trim();
  if (!process.stdin.isTTY) {
    throw new UserError(`the passphrase of ${dir} is needed: set STEWARD_PASSPHRASE, or run on a terminal to be asked`);
  }
  return read({ prompt: `passphrase for ${path.join(dir, IDENTITY_FILES.key)}: `, silent: true, replace: '*' });
}

/** Opens an identity with its passphrase; a wrong passphrase is a clear error naming the key file. */
export function openIdentity(dir: string, passphrase: string): Identity {
  const certFile = path.join(dir, IDENTITY_FILES.certificate);
  const keyFile = path.join(dir, IDENTITY_FILES.key);
  if (!existsSync(certFile) || !existsSync(keyFile)) {
    throw new UserError(
      `${dir} is not a Steward identity (expected ${IDENTITY_FILES.certificate} and ${IDENTITY_FILES.key})`,
    );
  }
  const certificatePem = readFileSync(certFile, 'utf8');
  let key: KeyObject;
  try {
    key = privateKey(readFileSync(keyFile, 'utf8'), passphrase);
  } catch {
    throw new UserError(`the passphrase does not open ${keyFile}`, EXIT.denied);
  }
  return { dir, certificatePem, key, info: certificateInfo(certificatePem) };
}

export const DEMO_ROLES = ['steward', 'dpo', 'ops', 'auditor', 'qa'] as const;

/**
 * Issues, once, a demo identity per role under `<dir>/<role>` (passphrase kept beside the key, for demos only), and a
 * worker identity per jurisdiction under `<dir>/worker-<jurisdiction>`.
 */
export async function ensureDemoIdentities(
  authority: StewardAuthority,
  dir: string,
  jurisdictions: readonly string[],
): Promise<void> {
  const wanted = [
    ...DEMO_ROLES.map((role) => ({
      name: `Demo ${role === 'dpo' || role === 'qa' ? role.toUpperCase() : role[0]!.toUpperCase() + role.slice(1)}`,
      role,
      dir: role,
    })),
    ...jurisdictions.map((j) => ({ name: `Steward worker ${j}`, role: 'worker' as const, dir: `worker-${j}` })),
  ];
  for (const identity of wanted) {
    const target = path.join(dir, identity.dir);
    if (existsSync(path.join(target, IDENTITY_FILES.certificate))) continue;
    const issued = await authority.issue(identity.name, identity.role, 825);
    await writeIdentity(target, { ...issued, caPem: authority.caPem() }, randomBytes(18).toString('base64url'), {
      demo: true,
    });
  }
}

/** A demo identity, opened with the passphrase kept beside its key. */
export function openDemoIdentity(dir: string): Identity {
  return openIdentity(dir, readFileSync(path.join(dir, DEMO_PASSPHRASE_FILE), 'utf8').trim());
}
