import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

export interface S3Account {
  accessKeyId: string;
  secretAccessKey: string;
}

/** Credentials kept in a file (mode 0600): generated the first time, read afterwards; two processes agree on one. */
export async function storedCredentials(file: string, prefix: string): Promise<S3Account> {
  if (!existsSync(file)) {
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const generated: S3Account = {
      accessKeyId: `${prefix}${randomBytes(8).toString('hex').toUpperCase()}`,
      secretAccessKey: randomBytes(30).toString('base64url'),
    };
    await writeFile(file, JSON.stringify(generated, null, 2), { mode: 0o600, flag: 'wx' }).catch((e) => {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    });
  }
  return JSON.parse(readFileSync(file, 'utf8')) as S3Account;
}

/** The embedded versitygw's root credentials: used by `steward up` to administer, by nothing else. */
export function rootCredentials(dataDir: string): Promise<S3Account> {
  return storedCredentials(path.join(dataDir, 's3', 'credentials.json'), 'STW');
}

/** The storage account of one jurisdiction: its workers and commands reach its buckets, and only its buckets, with it. */
export function jurisdictionAccount(dataDir: string, jurisdiction: string): Promise<S3Account> {
  return storedCredentials(
    path.join(dataDir, 's3', 'accounts', `${jurisdiction}.json`),
    `STW${jurisdiction.toUpperCase()}`,
  );
}

/**
 * Creates an account (role `user`) in versitygw's flat-file IAM through its admin API, as root; an account that exists
 * is kept.
 */
export async function ensureS3Account(
  versitygwBin: string,
  endpoint: string,
  root: S3Account,
  account: S3Account,
  /** The CA an HTTPS endpoint's certificate is checked against (Go reads it from SSL_CERT_FILE). */
  caFile?: string,
): Promise<void> {
  const admin = ['admin', '--access', root.accessKeyId, '--secret', root.secretAccessKey, '--endpoint-url', endpoint];
  try {
    await promisify(execFile)(
      versitygwBin,
      [...admin, 'create-user', '--access', account.accessKeyId, '--secret', account.secretAccessKey, '--role', 'user'],
      caFile ? { env: { ...process.env, SSL_CERT_FILE: caFile } } : {},
    );
  } catch (error) {
    const output = `${(error as { stdout?: string }).stdout ?? ''}${(error as { stderr?: string }).stderr ?? ''}`;
    if (/already exists/i.test(output)) return;
    throw new Error(`versitygw could not create storage account ${account.accessKeyId}: ${output.trim()}`);
  }
}
