import os from 'node:os';
import path from 'node:path';
import { NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { getJurisdiction } from '../jurisdictions';
import { createConsentActivities } from '../activities/consent';
import { createIngestActivities } from '../activities/ingest';
import { loadConfig } from '../lib/config';
import { FileKeyStore } from '../lib/keystore';
import { logger } from '../lib/logger';
import { createS3Client } from '../lib/s3';
import { connectionOptions, stewardDataConverter } from '../lib/temporal';
import { ingestTaskQueue } from '../workflows/contracts';

/** An ingestion worker for one jurisdiction: polls only that jurisdiction's task queue, with its S3 credentials. */
async function main(): Promise<void> {
  const jurisdictionId = process.env.STEWARD_JURISDICTION;
  if (!jurisdictionId) throw new Error('STEWARD_JURISDICTION must name the jurisdiction this worker serves');
  const jurisdiction = getJurisdiction(jurisdictionId);
  const config = loadConfig();
  const keys = await FileKeyStore.open(path.join(config.dataDir, 'keys'), config.masterKey);
  const s3 = createS3Client(config.s3For(jurisdiction.id));
  const scratchDir = process.env.STEWARD_SCRATCH_DIR ?? path.join(config.dataDir, 'scratch', jurisdiction.id);

  Runtime.install({
    logger: {
      log: (level, message, meta) => logger[level === 'TRACE' ? 'trace' : (level.toLowerCase() as 'info')]({ ...meta }, message),
      trace: (m, meta) => logger.trace(meta ?? {}, m),
      debug: (m, meta) => logger.debug(meta ?? {}, m),
      info: (m, meta) => logger.info(meta ?? {}, m),
      warn: (m, meta) => logger.warn(meta ?? {}, m),
      error: (m, meta) => logger.error(meta ?? {}, m),
    },
  });
  const connection = await NativeConnection.connect(connectionOptions(config.temporal));
  const bundle = process.env.STEWARD_WORKFLOW_BUNDLE;
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: ingestTaskQueue(jurisdiction.id),
    identity: `steward-worker-${jurisdiction.id}@${os.hostname()}:${process.pid}`,
    ...(bundle ? { workflowBundle: { codePath: bundle } } : { workflowsPath: require.resolve('../workflows') }),
    activities: {
      ...createIngestActivities({
        s3,
        keys,
        jurisdiction,
        scratchDir,
        duckdbMemoryLimit: process.env.STEWARD_DUCKDB_MEMORY_LIMIT ?? '1GB',
      }),
      ...createConsentActivities({ s3, keys, jurisdiction }),
    },
    dataConverter: stewardDataConverter(keys),
    maxConcurrentActivityTaskExecutions: 2,
    shutdownGraceTime: '10s',
  });
  // Stop with the stack that started us.
  process.on('disconnect', () => worker.shutdown());
  const running = worker.run();
  logger.info({ jurisdiction: jurisdiction.id, taskQueue: ingestTaskQueue(jurisdiction.id) }, 'worker running');
  process.send?.({ type: 'ready' });
  await running;
  await connection.close();
}

main().catch((error: unknown) => {
  logger.error({ err: error instanceof Error ? { message: error.message, name: error.name } : String(error) }, 'worker failed');
  process.exit(1);
});
