import type { S3Client } from '@aws-sdk/client-s3';
import { VaultShardSchema, type VaultShard } from '../../schemas/vault';
import { open, seal } from './aead';
import type { KeyHandle } from './keystore';
import { getJson, putJson } from '../storage/json';
import { vaultPrefix, vaultShardKey } from '../storage/layout';
import { deleteOtherVersions, listObjects } from '../storage/objects';

export { vaultPrefix, vaultShardKey };

/**
 * The re-identification vault: token → original identifier, sealed with AES-256-GCM under the study's vault key (the
 * token is the additional data, so an entry cannot be moved to another token). One shard per dataset, in the
 * jurisdiction's catalog bucket: each ingestion writes its own, and only the study vault's single writer changes one.
 */

export function sealIdentifier(key: KeyHandle, token: string, raw: string): string {
  return seal(key.material, Buffer.from(raw, 'utf8'), token).toString('base64');
}

export function unsealIdentifier(key: KeyHandle, token: string, sealed: string): string {
  return open(key.material, Buffer.from(sealed, 'base64'), token).toString('utf8');
}

export async function writeVaultShard(s3: S3Client, bucket: string, shard: VaultShard): Promise<void> {
  await putJson(s3, bucket, vaultShardKey(shard.studyId, shard.datasetId), VaultShardSchema, shard);
}

/** Every shard of a study's vault. */
export async function readVaultShards(
  s3: S3Client,
  bucket: string,
  studyId: string,
): Promise<{ key: string; size: number; shard: VaultShard }[]> {
  const out: { key: string; size: number; shard: VaultShard }[] = [];
  for (const object of await listObjects(s3, bucket, vaultPrefix(studyId))) {
    const shard = await getJson(s3, bucket, object.key, VaultShardSchema);
    if (shard) out.push({ key: object.key, size: object.size, shard });
  }
  return out;
}

/** The original identifier behind a token, or undefined when the vault holds no entry for it. */
export async function lookUpToken(
  s3: S3Client,
  bucket: string,
  studyId: string,
  key: KeyHandle,
  token: string,
): Promise<string | undefined> {
  for (const { shard } of await readVaultShards(s3, bucket, studyId)) {
    const sealed = shard.entries[token];
    if (sealed) return unsealIdentifier(key, token, sealed);
  }
  return undefined;
}

/**
 * Removes the tokens' entries from every shard of the study, and every older version of a changed shard, so no stored
 * copy of the sealed identifier remains. Returns how many entries were destroyed. Retry-safe.
 */
export async function destroyVaultEntries(
  s3: S3Client,
  bucket: string,
  studyId: string,
  tokens: string[],
): Promise<number> {
  let destroyed = 0;
  for (const { key, shard } of await readVaultShards(s3, bucket, studyId)) {
    const hit = tokens.filter((t) => t in shard.entries);
    if (hit.length === 0) continue;
    for (const t of hit) delete shard.entries[t];
    destroyed += hit.length;
    const put = await putJson(s3, bucket, key, VaultShardSchema, shard);
    await deleteOtherVersions(s3, bucket, key, put.versionId);
  }
  return destroyed;
}
