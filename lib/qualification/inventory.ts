import { spawnSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  GetBucketPolicyCommand,
  GetBucketVersioningCommand,
  GetObjectLockConfigurationCommand,
  HeadBucketCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import { driftScheduleId, retentionScheduleId, SEARCH_ATTRIBUTES } from '../../contracts';
import { JURISDICTIONS } from '../../jurisdictions';
import type { BucketRole, Jurisdiction } from '../../schemas/jurisdiction';
import type { Inventory, InventoryItem } from '../../schemas/qualification';
import { canonicalJson } from '../crypto/canonical';
import { certificateInfo, chainProblem } from '../pki/x509';
import { INSTALL_ROOT } from '../runtime/install';
import { LOCKED } from '../storage/buckets';
import { hashFile } from '../storage/objects';
import { controlledFiles, controlledItemId, loadedItemId, loadedRulesSha256 } from './change';

export type InventoryPart = Pick<Inventory, 'items' | 'rules'>;

export interface InventoryDeps {
  s3: S3Client;
  jurisdiction: Jurisdiction;
  temporal: () => Promise<Client>;
  /** The jurisdiction's evidence signer certificate (PEM) and the CA it must chain to. */
  signerCertificatePem: () => Promise<string>;
  caPem: () => string;
  /** Paths the worker was started with (the stack passes them): binaries and the workflow bundle. */
  env?: NodeJS.ProcessEnv;
}

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

function packageVersion(name: string): string {
  const file = path.join(path.dirname(require.resolve(`${name}/package.json`)), 'package.json');
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

/** SHA-256 over a folder's files (each path and its SHA-256, sorted), for code that is not one file. */
async function treeHash(root: string, dirs: readonly string[]): Promise<string> {
  const lines: string[] = [];
  for (const dir of dirs) {
    for (const entry of await readdir(path.join(root, dir), { withFileTypes: true, recursive: true })) {
      if (!entry.isFile() || !/\.(ts|json)$/.test(entry.name)) continue;
      const file = path.join(entry.parentPath, entry.name);
      lines.push(`${path.relative(root, file)}\t${(await hashFile(file)).sha256}`);
    }
  }
  return sha256(lines.sort().join('\n'));
}

/** The commit the installation runs from and whether its tree is clean; nulls where it is not a git checkout. */
function sourceState(): Inventory['source'] {
  if (!existsSync(path.join(INSTALL_ROOT, '.git'))) return { commit: null, clean: null };
  const git = (args: string[]) =>
    spawnSync('git', ['-C', INSTALL_ROOT, ...args], { encoding: 'utf8', timeout: 20_000 });
  const head = git(['rev-parse', 'HEAD']);
  const status = git(['status', '--porcelain', '--untracked-files=normal']);
  return {
    commit: head.status === 0 ? head.stdout.trim() : null,
    clean: status.status === 0 ? status.stdout.trim() === '' : null,
  };
}

/** The GPUs `nvidia-smi` reports (model and driver), or none where the machine has no NVIDIA driver. */
function gpuInventory(): string {
  const result = spawnSync('nvidia-smi', ['--query-gpu=name,driver_version', '--format=csv,noheader'], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  if (result.error || result.status !== 0) return 'none (no nvidia-smi on this machine)';
  return result.stdout.trim().split('\n').sort().join('; ') || 'none';
}

/**
 * The installation as a worker of the jurisdiction finds it: binaries, runtime, code, controlled files, Temporal search
 * attributes and schedules, the evidence signer, GPUs (the buckets' settings come from `inspectBuckets`). Hashes,
 * versions and settings only.
 */
export async function takeInventory(deps: InventoryDeps): Promise<Inventory> {
  const env = deps.env ?? process.env;
  const items: InventoryItem[] = [];
  const rules: Inventory['rules'] = [];
  const add = (check: string, id: string, label: string, value: string) => items.push({ check, id, label, value });
  const rule = (check: string, name: string, ok: boolean, detail?: string) =>
    rules.push({ check, rule: name, ok, ...(detail ? { detail } : {}) });

  // Binaries the stack runs.
  for (const [tool, variable] of [
    ['temporal', 'STEWARD_TEMPORAL_BIN'],
    ['versitygw', 'STEWARD_VERSITYGW_BIN'],
  ] as const) {
    const bin = env[variable];
    const ok = !!bin && existsSync(bin);
    rule('iq.tools', `the ${tool} binary the stack runs is present`, ok, ok ? undefined : `${variable}=${bin ?? ''}`);
    if (ok) add('iq.tools', `tool.${tool}.sha256`, `${tool} binary SHA-256`, (await hashFile(bin)).sha256);
  }
  const client = await deps.temporal();
  const info = await client.workflowService.getSystemInfo({});
  add('iq.tools', 'tool.temporal-server.version', 'Temporal server version', info.serverVersion || 'unknown');

  // Runtime and dependencies.
  add('iq.runtime', 'runtime.node', 'Node.js version', process.version);
  rule('iq.runtime', 'Node.js is version 20 or later', Number(process.versions.node.split('.')[0]) >= 20);
  add('iq.runtime', 'runtime.temporal-sdk', 'Temporal TypeScript SDK version', packageVersion('@temporalio/worker'));
  add('iq.runtime', 'runtime.duckdb', 'DuckDB (@duckdb/node-api) version', packageVersion('@duckdb/node-api'));
  const lockfile = path.join(INSTALL_ROOT, 'package-lock.json');
  rule('iq.runtime', 'the npm lockfile is present', existsSync(lockfile));
  if (existsSync(lockfile)) {
    add('iq.runtime', 'runtime.package-lock', 'npm lockfile SHA-256', (await hashFile(lockfile)).sha256);
  }

  // Workflow code: the bundle the worker loaded, else the sources it bundles.
  const bundle = env.STEWARD_WORKFLOW_BUNDLE;
  if (bundle && existsSync(bundle)) {
    add('iq.workflow-code', 'code.workflow-bundle', 'workflow bundle SHA-256', (await hashFile(bundle)).sha256);
  } else {
    add(
      'iq.workflow-code',
      'code.workflow-sources',
      'workflow sources SHA-256 (workflows, contracts, schemas, lib, jurisdictions)',
      await treeHash(INSTALL_ROOT, ['workflows', 'contracts', 'schemas', 'lib', 'jurisdictions']),
    );
  }

  // Controlled files: the jurisdiction's own rules, every pipeline file, the requirements.
  for (const file of await controlledFiles(deps.jurisdiction.id, INSTALL_ROOT)) {
    add(
      'iq.controlled-files',
      controlledItemId(file),
      `${file} SHA-256`,
      (await hashFile(path.join(INSTALL_ROOT, file))).sha256,
    );
  }

  // The jurisdiction rules as this worker loaded them when it started (an edit on disk shows in the file's hash at
  // once, and here only after a restart).
  const id = deps.jurisdiction.id;
  add(
    'iq.controlled-files',
    loadedItemId(id),
    `jurisdictions/${id}.json as this worker loaded it (SHA-256 of its rules)`,
    loadedRulesSha256(JURISDICTIONS[id]!),
  );

  // Temporal: search attributes and the jurisdiction's schedules.
  const namespace = client.options.namespace;
  const registered = await client.connection.operatorService.listSearchAttributes({ namespace });
  const custom = registered.customAttributes ?? {};
  for (const key of Object.values(SEARCH_ATTRIBUTES)) {
    rule('iq.temporal', `search attribute ${key.name} is registered`, custom[key.name] !== undefined);
  }
  add(
    'iq.temporal',
    'temporal.search-attributes',
    'registered search attributes',
    Object.keys(custom)
      .filter((n) => Object.values(SEARCH_ATTRIBUTES).some((k) => k.name === n))
      .sort()
      .join(', '),
  );
  for (const scheduleId of [retentionScheduleId(deps.jurisdiction.id), driftScheduleId(deps.jurisdiction.id)]) {
    const schedule = await client.schedule
      .getHandle(scheduleId)
      .describe()
      .catch(() => undefined);
    add(
      'iq.temporal',
      `schedule.${scheduleId}`,
      `schedule ${scheduleId}`,
      schedule
        ? `spec SHA-256 ${sha256(canonicalJson(JSON.parse(JSON.stringify(schedule.spec))))}, ${schedule.state.paused ? 'paused' : 'running'}`
        : 'absent',
    );
  }

  // The evidence signer.
  const signerPem = await deps.signerCertificatePem();
  const signer = certificateInfo(signerPem);
  const problem = chainProblem(signerPem, deps.caPem(), new Date());
  rule('iq.identity', 'the evidence signer certificate chains to the Steward CA and is valid now', !problem, problem);
  add(
    'iq.identity',
    'identity.evidence-signer',
    `evidence signer "${signer.name}" certificate SHA-256`,
    new X509Certificate(signerPem).fingerprint256.replaceAll(':', '').toLowerCase(),
  );

  add('iq.gpu', 'gpu.nvidia', 'NVIDIA GPUs (model, driver)', gpuInventory());

  return {
    takenAt: new Date().toISOString(),
    jurisdiction: deps.jurisdiction.id,
    worker: {
      identity: `steward-worker-${deps.jurisdiction.id}@${os.hostname()}:${process.pid}`,
      hostname: os.hostname(),
    },
    source: sourceState(),
    items,
    rules,
  };
}

/**
 * A jurisdiction's buckets as storage reports them: each bucket's existence, versioning, Object Lock and the SHA-256 of
 * its policy. Storage answers these to its administrator and a bucket's owner only, so the storage inspector (the one
 * process holding the administrator's credentials, which reads settings and nothing else) takes this part.
 */
export async function inspectBuckets(s3: S3Client, jurisdiction: Jurisdiction): Promise<InventoryPart> {
  const items: InventoryItem[] = [];
  const rules: Inventory['rules'] = [];
  const add = (check: string, id: string, label: string, value: string) => items.push({ check, id, label, value });
  const rule = (check: string, name: string, ok: boolean, detail?: string) =>
    rules.push({ check, rule: name, ok, ...(detail ? { detail } : {}) });
  for (const [role, bucket] of Object.entries(jurisdiction.buckets) as [BucketRole, string][]) {
    const exists = await s3
      .send(new HeadBucketCommand({ Bucket: bucket }))
      .then(() => true)
      .catch(() => false);
    rule('iq.buckets', `bucket ${bucket} exists`, exists);
    if (!exists) continue;
    const versioning = await s3
      .send(new GetBucketVersioningCommand({ Bucket: bucket }))
      .then((r) => r.Status ?? 'Off')
      .catch((error: Error) => `unreadable (${error.name})`);
    add('iq.buckets', `bucket.${bucket}.versioning`, `${bucket} versioning`, versioning);
    rule('iq.buckets', `bucket ${bucket} has versioning enabled`, versioning === 'Enabled', `found ${versioning}`);
    const lock = await s3
      .send(new GetObjectLockConfigurationCommand({ Bucket: bucket }))
      .then((r) => r.ObjectLockConfiguration?.ObjectLockEnabled ?? 'Off')
      .catch((error: Error) =>
        error.name === 'ObjectLockConfigurationNotFoundError' ? 'Off' : `unreadable (${error.name})`,
      );
    add('iq.buckets', `bucket.${bucket}.object-lock`, `${bucket} Object Lock`, lock);
    if (LOCKED.includes(role)) {
      rule('iq.buckets', `bucket ${bucket} (${role}) has Object Lock enabled`, lock === 'Enabled', `found ${lock}`);
    }
    const policy = await s3
      .send(new GetBucketPolicyCommand({ Bucket: bucket }))
      .then((r) => ({ text: r.Policy ?? null, error: null }))
      .catch((error: Error) => ({ text: null, error: error.name === 'NoSuchBucketPolicy' ? null : error.name }));
    const found = policy.text !== null;
    rule(
      'iq.policies',
      `bucket ${bucket} has a bucket policy`,
      found,
      found ? undefined : policy.error ? `unreadable (${policy.error})` : 'none found',
    );
    if (policy.text !== null) {
      add(
        'iq.policies',
        `policy.${bucket}`,
        `${bucket} policy SHA-256`,
        sha256(canonicalJson(JSON.parse(policy.text))),
      );
    }
  }
  return { items, rules };
}
