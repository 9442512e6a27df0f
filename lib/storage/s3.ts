import { readFileSync } from 'node:fs';
import https from 'node:https';
import { S3Client } from '@aws-sdk/client-s3';
import type { S3Endpoint } from '../../schemas/config';

// Steward pins its SDK version and supports Node 20; the SDK's notice about future releases is not for operators.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export function createS3Client(endpoint: S3Endpoint): S3Client {
  return new S3Client({
    ...(endpoint.endpoint ? { endpoint: endpoint.endpoint } : {}),
    region: endpoint.region,
    forcePathStyle: endpoint.forcePathStyle,
    credentials: { accessKeyId: endpoint.accessKeyId, secretAccessKey: endpoint.secretAccessKey },
    // Checksums are computed by Steward itself (SHA-256, sent with each upload), not by the SDK's CRC defaults.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 5,
    // An HTTPS endpoint whose certificate a deployment CA issued: trusted through that CA alone.
    ...(endpoint.caFile
      ? { requestHandler: { httpsAgent: new https.Agent({ ca: readFileSync(endpoint.caFile), keepAlive: true }) } }
      : {}),
  });
}

export function isNotFound(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'NotFound' || e?.name === 'NoSuchKey' || e?.$metadata?.httpStatusCode === 404;
}

/** Storage refused the caller's credentials (another jurisdiction's bucket, or no grant). */
export function isAccessDenied(error: unknown): boolean {
  const e = error as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'AccessDenied' || e?.Code === 'AccessDenied' || e?.$metadata?.httpStatusCode === 403;
}
