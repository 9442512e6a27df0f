import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

/**
 * Worker Versioning in the production profile. Each jurisdiction's workers form one Worker Deployment,
 * `steward-<jurisdiction>`; each release they run is one version of it, named by its build id. Temporal sends new
 * work to the deployment's current version only, and the stack makes a version current only after the replay gate.
 */
export function deploymentName(jurisdiction: string): string {
  return `steward-${jurisdiction}`;
}

/** The folders of a release whose code a worker runs: its build id changes when any file in them does. */
const RELEASE_CODE = ['activities', 'contracts', 'jurisdictions', 'lib', 'schemas', 'workers', 'workflows'];

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile() && /\.(ts|js|json)$/.test(e.name))
    .map((e) => path.join(e.parentPath, e.name))
    .sort();
}

/**
 * A release's build id: the first 16 hex digits of the SHA-256 over its workflow bundle and every source file of its
 * workers (paths relative to the release, then contents), so two trees that run the same code get the same id.
 */
export async function buildIdOf(releaseRoot: string, bundleCode: string): Promise<string> {
  const hash = createHash('sha256').update('steward-build/1\0').update(bundleCode).update('\0');
  for (const folder of RELEASE_CODE) {
    for (const file of await filesUnder(path.join(releaseRoot, folder))) {
      hash
        .update(path.relative(releaseRoot, file))
        .update('\0')
        .update(await readFile(file))
        .update('\0');
    }
  }
  return hash.digest('hex').slice(0, 16);
}

/** A version a jurisdiction's deployment knows, with its status (current, draining, drained…). */
export interface DeploymentVersion {
  buildId: string;
  status: string;
  createdAt: string | undefined;
}

/**
 * A jurisdiction's Worker Deployment as Temporal describes it: the current build (undefined before any version was
 * made current) and the versions it knows. Empty before any of its workers has polled.
 */
export async function describeDeployment(
  client: Client,
  jurisdiction: string,
): Promise<{ current: string | undefined; versions: DeploymentVersion[] }> {
  try {
    const { workerDeploymentInfo } = await client.workflowService.describeWorkerDeployment({
      namespace: client.options.namespace,
      deploymentName: deploymentName(jurisdiction),
    });
    return {
      current: workerDeploymentInfo?.routingConfig?.currentDeploymentVersion?.buildId ?? undefined,
      versions: (workerDeploymentInfo?.versionSummaries ?? []).map((v) => ({
        buildId: v.deploymentVersion?.buildId ?? '',
        status: (temporal.api.enums.v1.WorkerDeploymentVersionStatus[v.status ?? 0] ?? 'unknown')
          .replace(/^WORKER_DEPLOYMENT_VERSION_STATUS_/, '')
          .toLowerCase(),
        createdAt: v.createTime?.seconds ? new Date(Number(v.createTime.seconds) * 1000).toISOString() : undefined,
      })),
    };
  } catch (error) {
    // NOT_FOUND: no worker of this deployment has polled yet.
    if ((error as { code?: number }).code === 5) return { current: undefined, versions: [] };
    throw error;
  }
}

/** The build id of a jurisdiction's current version, or undefined before any version was made current. */
export async function currentBuildId(client: Client, jurisdiction: string): Promise<string | undefined> {
  return (await describeDeployment(client, jurisdiction)).current;
}

/**
 * Where `steward workers deploy` leaves signed deploy requests for the stack, and where the stack answers each: a
 * result file of the same name.
 */
export function deployFolders(dataDir: string): { requests: string; results: string } {
  const dir = path.join(dataDir, 'deploy');
  return { requests: path.join(dir, 'requests'), results: path.join(dir, 'results') };
}

/**
 * Makes a build the jurisdiction's current version. Its workers must have polled first: the server learns of a
 * version from its pollers, a moment after they start, so this retries for up to a minute.
 */
export async function setCurrentBuildId(
  client: Client,
  jurisdiction: string,
  buildId: string,
  identity: string,
): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await client.workflowService.setWorkerDeploymentCurrentVersion({
        namespace: client.options.namespace,
        deploymentName: deploymentName(jurisdiction),
        buildId,
        identity,
      });
      return;
    } catch (error) {
      const code = (error as { code?: number }).code;
      // NOT_FOUND or FAILED_PRECONDITION: the version's pollers are not known yet.
      if ((code !== 5 && code !== 9) || Date.now() > deadline) {
        throw new Error(
          `could not make build ${buildId} current in ${deploymentName(jurisdiction)}: ${(error as Error).message}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}
