import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  DeleteObjectCommand,
  GetBucketPolicyCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutBucketPolicyCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import { createS3Client } from '../../lib/storage/s3';
import { StackStateSchema } from '../../schemas/config';
import { stackState } from '../helpers';

const opened: S3Client[] = [];
afterAll(() => opened.forEach((c) => c.destroy()));

function accountOf(jurisdiction: string) {
  const account = stackState().jurisdictions[jurisdiction]?.account;
  if (!account) throw new Error(`the stack made no storage account for ${jurisdiction}`);
  return account;
}

function clientOf(jurisdiction: string): S3Client {
  const client = createS3Client({ ...stackState().s3, ...accountOf(jurisdiction) });
  opened.push(client);
  return client;
}

/** What storage answers: `ok`, or the error's name (AccessDenied, NoSuchKey, …); a bodiless 403 (HEAD) is AccessDenied. */
async function answer(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => 'ok',
    (e: { name?: string; $metadata?: { httpStatusCode?: number } }) =>
      e.$metadata?.httpStatusCode === 403 ? 'AccessDenied' : (e.name ?? 'error'),
  );
}

/** Every kind of request a worker makes, against one bucket. */
function requests(bucket: string) {
  const key = 'residency-probe/object.txt';
  return {
    list: (s3: S3Client) => s3.send(new ListObjectsV2Command({ Bucket: bucket })),
    listVersions: (s3: S3Client) => s3.send(new ListObjectVersionsCommand({ Bucket: bucket })),
    put: (s3: S3Client) => s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'probe' })),
    head: (s3: S3Client) => s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })),
    get: (s3: S3Client) => s3.send(new GetObjectCommand({ Bucket: bucket, Key: key })),
    delete: (s3: S3Client) => s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })),
    getPolicy: (s3: S3Client) => s3.send(new GetBucketPolicyCommand({ Bucket: bucket })),
    putPolicy: (s3: S3Client) =>
      s3.send(
        new PutBucketPolicyCommand({
          Bucket: bucket,
          Policy: JSON.stringify({
            Version: '2012-10-17',
            Statement: [{ Effect: 'Allow', Principal: '*', Action: ['s3:*'], Resource: [`arn:aws:s3:::${bucket}/*`] }],
          }),
        }),
      ),
  };
}

describe('storage keeps each jurisdiction’s data to its own account', () => {
  it('an EU account gets AccessDenied from storage on every US bucket, and a US account on every EU bucket', async () => {
    for (const [mine, theirs] of [
      ['eu', 'us'],
      ['us', 'eu'],
    ] as const) {
      const s3 = clientOf(mine);
      for (const bucket of Object.values(stackState().jurisdictions[theirs]!.buckets)) {
        const answers: Record<string, string> = {};
        for (const [name, send] of Object.entries(requests(bucket))) answers[name] = await answer(send(s3));
        expect(answers, `${mine} account on ${bucket}`).toEqual({
          list: 'AccessDenied',
          listVersions: 'AccessDenied',
          put: 'AccessDenied',
          head: 'AccessDenied',
          get: 'AccessDenied',
          delete: 'AccessDenied',
          getPolicy: 'AccessDenied',
          putPolicy: 'AccessDenied',
        });
      }
    }
  });

  it("an account reaches its own jurisdiction's buckets", async () => {
    const s3 = clientOf('eu');
    const landing = stackState().jurisdictions.eu!.buckets.landing!;
    const probe = requests(landing);
    expect(await answer(probe.put(s3))).toBe('ok');
    expect(await answer(probe.get(s3))).toBe('ok');
    expect(await answer(probe.delete(s3))).toBe('ok');
    for (const bucket of Object.values(stackState().jurisdictions.eu!.buckets)) {
      expect(await answer(requests(bucket).list(s3)), bucket).toBe('ok');
    }
  });

  it("every worker runs with its jurisdiction's account, not root", () => {
    const state = StackStateSchema.parse(
      JSON.parse(readFileSync(path.join(stackState().dataDir, 'stack.json'), 'utf8')),
    );
    expect(state.workers.map((w) => w.jurisdiction).sort()).toEqual(['eu', 'us']);
    for (const worker of state.workers) {
      const environ = readFileSync(`/proc/${worker.pid}/environ`, 'utf8').split('\0');
      const key = environ.find((v) => v.startsWith('STEWARD_S3_ACCESS_KEY_ID='))?.split('=')[1];
      expect(key, worker.jurisdiction).toBe(accountOf(worker.jurisdiction).accessKeyId);
      expect(key).not.toBe(stackState().s3.accessKeyId);
    }
  });
});
