import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { METADATA_ENCODING_KEY, type Payload } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { AesGcmPayloadCodec } from '../lib/crypto/codec';
import type { KeyStore } from '../lib/crypto/keystore';
import { recordedHistories } from '../lib/stack/replay-gate';

/**
 * Workflow histories recorded from the previous release: `<workflowType>.json` (a run that completed or continued as
 * new) and `<workflowType>.failed.json` (a run that failed), each `{ workflowId, history }`: the run's workflow id (a
 * workflow may check it, against its saved state's sender for one) and its `temporal.api.history.v1.History` as JSON
 * (enums by name, 64-bit integers as strings, bytes in base64), with every payload decoded, so it replays in any later
 * run without the recording run's payload key.
 */
export const HISTORY_FIXTURES = path.join(__dirname, 'fixtures', 'histories');

const { History } = temporal.api.history.v1;

export function historyToObject(history: temporal.api.history.v1.IHistory): Record<string, unknown> {
  return History.toObject(History.fromObject(history), { longs: String, enums: String, bytes: String });
}

export function historyFromObject(object: unknown): temporal.api.history.v1.History {
  return History.fromObject(object as Record<string, unknown>);
}

/** Every workflow type `workflows/index.ts` exports, as workers register them. */
export function exportedWorkflowTypes(): string[] {
  const index = readFileSync(path.join(__dirname, '..', 'workflows', 'index.ts'), 'utf8');
  return [...index.matchAll(/export \{([^}]*)\}/g)]
    .flatMap((m) => m[1]!.split(',').map((name) => name.trim()))
    .filter(Boolean)
    .sort();
}

export interface HistoryFixture {
  file: string;
  workflowType: string;
  workflowId: string;
  history: temporal.api.history.v1.IHistory;
}

export function historyFixtures(): HistoryFixture[] {
  return recordedHistories(HISTORY_FIXTURES).map(({ name, workflowId, history }) => ({
    file: name,
    workflowType: name.split('.')[0]!,
    workflowId,
    history,
  }));
}

interface PayloadJson {
  metadata?: Record<string, string>;
  data?: string;
}

function isPayloadJson(value: unknown): value is PayloadJson {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const metadata = (value as PayloadJson).metadata;
  return typeof metadata === 'object' && metadata !== null && typeof metadata[METADATA_ENCODING_KEY] === 'string';
}

/** Applies `fn` to every payload of a JSON history (inputs, results, signals, updates, markers, failure attributes). */
async function mapPayloads(value: unknown, fn: (payload: PayloadJson) => Promise<PayloadJson>): Promise<unknown> {
  if (isPayloadJson(value)) return fn(value);
  if (Array.isArray(value)) return Promise.all(value.map((v) => mapPayloads(v, fn)));
  if (typeof value === 'object' && value !== null) {
    const entries = await Promise.all(Object.entries(value).map(async ([k, v]) => [k, await mapPayloads(v, fn)]));
    return Object.fromEntries(entries);
  }
  return value;
}

const toPayload = (json: PayloadJson): Payload => ({
  metadata: Object.fromEntries(Object.entries(json.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
  data: Buffer.from(json.data ?? '', 'base64'),
});

const toJson = (payload: Payload): PayloadJson => ({
  metadata: Object.fromEntries(
    Object.entries(payload.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? []).toString('base64')]),
  ),
  ...(payload.data && payload.data.length > 0 ? { data: Buffer.from(payload.data).toString('base64') } : {}),
});

/**
 * A run's history (as `historyToObject` makes it) with every payload decrypted by the suite's codec: replayable with a data converter that has
 * no codec, in a later run whose payload key differs. Encryption metadata (the key id) goes with the ciphertext.
 */
export async function decodedHistory(client: Client, keys: KeyStore, workflowId: string, runId: string) {
  const codec = new AesGcmPayloadCodec(keys);
  const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  return mapPayloads(historyToObject(history), async (json) => {
    const [decoded] = await codec.decode([toPayload(json)]);
    return toJson(decoded!);
  });
}

/** Every decoded payload's value (JSON payloads only), JSON held in strings (a signed request's body) parsed too. */
export async function payloadValues(history: unknown): Promise<unknown[]> {
  const values: unknown[] = [];
  await mapPayloads(history, async (json) => {
    const encoding = Buffer.from(json.metadata?.[METADATA_ENCODING_KEY] ?? '', 'base64').toString();
    if (encoding === 'json/plain') values.push(JSON.parse(Buffer.from(json.data ?? '', 'base64').toString('utf8')));
    else if (encoding !== 'binary/null') values.push({ [`(${encoding} payload)`]: true });
    return json;
  });
  return values;
}

/** Subject identifiers as the synthetic package generator makes them: `<prefix>-<study>-<six digits>`. */
const GENERATED_SUBJECT_ID = /\b[A-Z]{2,8}-[A-Za-z0-9._-]{1,64}-\d{6}\b/;
/** Fields that name a data subject (a certificate's `subject` is a distinguished name, not a data subject). */
const SUBJECT_FIELD = /^(subject|subjectId|subjectIds|subject_id)$/;

/**
 * Workflows whose input is a data subject's identifier, so that every run of them names one (a synthetic one, in the
 * suite): their fixtures may carry it.
 */
export const SUBJECT_INPUT_WORKFLOWS: Record<string, string> = {
  withdrawConsentWorkflow: 'withdraws the consent of the subject its signed request names',
  subjectRequestWorkflow: 'serves a request of the data subject its signed request names',
};

/**
 * Why a run of `workflowType` may not be committed as a fixture: raw subject identifiers (unless the workflow's input is
 * one), a payload the suite's codec could not decode, or anything that looks like key material. Empty when it may.
 */
export async function fixtureObjections(history: unknown, workflowType: string): Promise<string[]> {
  const subjectsAllowed = workflowType in SUBJECT_INPUT_WORKFLOWS;
  const objections = new Set<string>();
  const visit = (value: unknown, field: string): void => {
    if (typeof value === 'string') {
      const trimmed = value.trim();
      if ((trimmed.startsWith('{') || trimmed.startsWith('[')) && trimmed.length > 1) {
        try {
          visit(JSON.parse(trimmed), field);
          return;
        } catch {
          // Not JSON: checked as text below.
        }
      }
      if (!subjectsAllowed && SUBJECT_FIELD.test(field) && value.length > 0 && !/\bCN=/.test(value)) {
        objections.add(`a subject identifier in field ${field}`);
      }
      if (!subjectsAllowed && GENERATED_SUBJECT_ID.test(value)) {
        objections.add(`a generated subject identifier in field ${field}`);
      }
      if (/PRIVATE KEY/.test(value)) objections.add(`a private key in field ${field}`);
      return;
    }
    if (Array.isArray(value)) {
      for (const v of value) visit(v, field);
      return;
    }
    if (typeof value === 'object' && value !== null) {
      for (const [k, v] of Object.entries(value)) {
        if (/^\(binary\/encrypted payload\)$/.test(k)) objections.add('a payload that is still encrypted');
        if (/(material|secret|passphrase|privateKey)$/i.test(k) && typeof v === 'string') {
          objections.add(`key material in field ${k}`);
        }
        visit(v, k);
      }
    }
  };
  for (const value of await payloadValues(history)) visit(value, '(payload)');
  return [...objections].sort();
}

/** Histories longer than this are not recorded: a fixture stays small enough to read in a review. */
const MAX_EVENTS = 400;
const MAX_BYTES = 600_000;

/**
 * Records a completed (or continued-as-new) and, where there is one, a failed run of each workflow type from the stack
 * `client` talks to, replacing the fixtures of those types; returns the types it could not record, and why.
 */
export async function recordHistoryFixtures(client: Client, keys: KeyStore, wanted: string[]): Promise<string[]> {
  const runs = new Map<string, { workflowId: string; runId: string; status: string; events: number }[]>();
  for await (const execution of client.workflow.list()) {
    if (!wanted.includes(execution.type)) continue;
    runs.set(execution.type, [
      ...(runs.get(execution.type) ?? []),
      {
        workflowId: execution.workflowId,
        runId: execution.runId,
        status: execution.status.name,
        events: execution.historyLength,
      },
    ]);
  }

  const notRecorded: string[] = [];
  const recordedIds = new Set(historyFixtures().map((f) => f.workflowId));
  for (const type of wanted) {
    for (const old of historyFixtures().filter((f) => f.workflowType === type)) {
      rmSync(path.join(HISTORY_FIXTURES, old.file));
      recordedIds.delete(old.workflowId);
    }
    const classes = [
      { file: `${type}.json`, statuses: ['COMPLETED', 'CONTINUED_AS_NEW'], required: true },
      { file: `${type}.failed.json`, statuses: ['FAILED'], required: false },
    ];
    for (const { file, statuses, required } of classes) {
      // The longest history of its kind that fits: it exercises the most of the workflow's code.
      const candidates = (runs.get(type) ?? [])
        .filter((r) => statuses.includes(r.status) && r.events <= MAX_EVENTS && !recordedIds.has(r.workflowId))
        .sort((a, b) => b.events - a.events);
      let written = false;
      const skipped = new Set<string>();
      for (const run of candidates) {
        const history = await decodedHistory(client, keys, run.workflowId, run.runId);
        const text = JSON.stringify(
          { workflowId: run.workflowId, history: historyToObject(historyFromObject(history)) },
          null,
          1,
        );
        const objections = await fixtureObjections(history, type);
        if (text.length > MAX_BYTES) objections.push(`over ${MAX_BYTES} bytes`);
        if (objections.length > 0) {
          for (const objection of objections) skipped.add(objection);
          continue;
        }
        writeFileSync(path.join(HISTORY_FIXTURES, file), `${text}\n`);
        recordedIds.add(run.workflowId);
        written = true;
        break;
      }
      if (!written && required) {
        const why = skipped.size > 0 ? `every one had ${[...skipped].join(', ')}` : 'none ran';
        notRecorded.push(`${type}: no ${statuses.join(' or ')} run of at most ${MAX_EVENTS} events to record: ${why}`);
      }
    }
  }
  return notRecorded;
}
