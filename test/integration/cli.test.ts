import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, cp, readFile, rename, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { GetObjectLockConfigurationCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatasetRecord } from '../../schemas/dataset';
import { FileKeyStore } from '../../lib/crypto/keystore';
import { tokenize } from '../../lib/crypto/pseudonymize';
import { createS3Client } from '../../lib/storage/s3';
import {
  BIN,
  objectVersions,
  opensslCmsVerify,
  runSteward,
  smallMetadata,
  stackState,
  tempDir,
  writeBag,
} from '../helpers';

// The `steward` binary against a second stack of its own, beside the suite's: each test drives one command family.
let dataDir: string;
let out: string;
let record: DatasetRecord;

/** The demo DPO identity `steward up` issued for this stack. */
function dpoIdentity(): string {
  return path.join(dataDir, 'identities', 'dpo');
}

function stewardWith(env: Record<string, string>, ...args: string[]) {
  return runSteward(dataDir, args, { env, timeoutMs: 300_000 });
}

function steward(...args: string[]) {
  return stewardWith({}, ...args);
}

/** The last line a command wrote to stderr: its verdict, after any step lines. */
function verdict(stderr: string): string {
  return stderr.trimEnd().split('\n').at(-1)!;
}

beforeAll(async () => {
  dataDir = await tempDir('steward-cli-');
  out = await tempDir();
});

afterAll(() => {
  steward('down');
});

describe('without a stack', () => {
  it('documents every command', () => {
    const help = steward('--help');
    expect(help.code).toBe(0);
    for (const command of [
      'up',
      'down',
      'status',
      'ingest',
      'consent',
      'datasets',
      'keys',
      'reidentify',
      'identity',
      'audit',
      'cert',
      'hold',
      'trial',
      'retention',
      'demo',
      'codec-server',
      'preprocess',
      'worker',
    ])
      expect(help.stdout).toContain(command);
    expect(steward('preprocess', 'run', '--help').stdout).toContain('--pipeline <ref>');
    expect(steward('worker', '--help').stdout).toContain('--gpu');
    expect(steward('consent', 'import', '--help').stdout).toContain('--jurisdiction <id>');
    expect(steward('keys', 'rotate', '--help').stdout).toContain('--request-id <id>');
  });

  it('ends quietly when its reader stops early', () => {
    // `true` reads nothing and exits at once, so the help is written into a pipe nobody reads any more.
    const piped = spawnSync(
      'bash',
      ['-o', 'pipefail', '-c', `"${process.execPath}" "${BIN}" consent import --help | true`],
      {
        encoding: 'utf8',
        env: { ...process.env, STEWARD_FROM_SOURCE: '1' },
        timeout: 60_000,
      },
    );
    expect({ code: piped.status, stderr: piped.stderr }).toEqual({ code: 0, stderr: '' });
  });

  it('says no stack is running, with exit code 4', () => {
    const status = steward('status', '--json');
    expect(status.code).toBe(4);
    expect(JSON.parse(status.stdout)).toMatchObject({ running: false });
    const list = steward('datasets', 'list');
    expect(list.code).toBe(4);
    expect(list.stderr).toContain('no Steward stack is running');
  });

  it('refuses invalid options before anything runs, naming the option', () => {
    const bad = steward('keys', 'rotate', '--jurisdiction', 'eu', '--study', 'S 1', '--request-id', 'x');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatchInlineSnapshot(`
      "steward: --study: must be 1-64 letters, digits, ".", "_" or "-", starting alphanumeric
      --request-id: must be 6-64 letters, digits, "_" or "-" (as printed by an earlier run)
      "
    `);
  });

  it('says a consent file is expected when given a directory or a missing file', async () => {
    const dir = await tempDir('steward-consent-dir-');
    const asDirectory = steward('consent', 'import', dir, '--jurisdiction', 'eu', '--study', 'S-1');
    expect({ code: asDirectory.code, stderr: asDirectory.stderr.replace(dir, '<dir>') }).toEqual({
      code: 2,
      stderr: 'steward: <dir> is a directory; consent import expects a CSV file\n',
    });
    const missing = steward('consent', 'import', path.join(dir, 'nope.csv'), '--jurisdiction', 'eu', '--study', 'S-1');
    expect({ code: missing.code, stderr: missing.stderr.replace(dir, '<dir>') }).toEqual({
      code: 2,
      stderr: 'steward: <dir>/nope.csv: no such file; consent import expects a CSV file\n',
    });
  });

  it('refuses a file that is not an inclusion proof with exit 7, naming the file and rule, never its content', async () => {
    const dir = await tempDir('steward-not-proof-');
    const text = path.join(dir, 'notes.txt');
    await writeFile(text, 'Dana Scully, ONC-204-0002, withdrew by phone\n');
    const json = path.join(dir, 'other.json');
    await writeFile(json, JSON.stringify({ format: 'Dana Scully', event: { details: { 'ONC-204-0002': [1] } } }));
    const notJson = steward('audit', 'verify-proof', text);
    expect({ code: notJson.code, stderr: notJson.stderr.replace(dir, '<dir>') }).toEqual({
      code: 7,
      stderr: 'steward: <dir>/notes.txt: not an inclusion proof (steward-audit-proof/1): the file is not JSON\n',
    });
    const notProof = steward('audit', 'verify-proof', json);
    expect(notProof.code).toBe(7);
    expect(notProof.stderr.replace(dir, '<dir>')).toMatch(
      /^steward: <dir>\/other\.json: not an inclusion proof \(steward-audit-proof\/1\): field "format": /,
    );
    for (const shown of [notJson.stderr + notJson.stdout, notProof.stderr + notProof.stdout]) {
      expect(shown).not.toContain('Dana');
      expect(shown).not.toContain('ONC-204');
    }
  });

  it('refuses a STEWARD_PASSPHRASE shorter than 12 characters before issuing anything', async () => {
    const dir = path.join(await tempDir(), 'short');
    const issued = stewardWith(
      { STEWARD_PASSPHRASE: 'elevenchars' },
      ...['identity', 'issue', '--name', 'Sam Short', '--role', 'auditor', '--out', dir],
    );
    expect({ code: issued.code, verdict: verdict(issued.stderr) }).toEqual({
      code: 2,
      verdict: 'steward: STEWARD_PASSPHRASE: the passphrase must have at least 12 characters',
    });
    expect(existsSync(path.join(dir, 'private-key.pem'))).toBe(false);
  });
});

describe('with a stack of its own', () => {
  it('starts in the background, printing each step although stderr is not a terminal', async () => {
    const up = steward('up', '--detach', '--jurisdictions', 'uk', '--json');
    expect(up.code, up.stderr).toBe(0);
    expect(up.stderr).toContain('starting Temporal dev server on 127.0.0.1:');
    expect(up.stderr).toContain('bundling workflow code');
    const status = steward('status', '--json');
    expect(status.code, status.stderr).toBe(0);
    const state = JSON.parse(status.stdout);
    expect(state).toMatchObject({
      running: true,
      healthy: true,
      temporal: { namespace: 'default', uiUrl: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/) },
      s3: { endpoint: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/), accessKeyId: expect.any(String) },
      jurisdictions: { uk: { buckets: { evidence: 'steward-uk-evidence', curated: 'steward-uk-curated' } } },
    });
    expect(state.temporal.address).not.toBe(stackState().temporal.address);
    const s3 = createS3Client(state.s3);
    const lock = await s3.send(new GetObjectLockConfigurationCommand({ Bucket: 'steward-uk-evidence' }));
    expect(lock.ObjectLockConfiguration?.ObjectLockEnabled).toBe('Enabled');
    s3.destroy();
  });

  it('imports consent and ingests a package; the same package again is the same dataset', () => {
    const generate = ['demo', 'generate', '--out', out, '--jurisdiction', 'uk', '--study', 'UK-CLI'];
    expect(steward(...generate, '--rows', '300', '--subjects', '30', '--vault').code).toBe(0);
    const consent = steward(
      'consent',
      'import',
      path.join(out, 'consent.csv'),
      ...['--jurisdiction', 'uk', '--study', 'UK-CLI', '--json'],
    );
    expect(consent.code, consent.stderr).toBe(0);
    expect(JSON.parse(consent.stdout)).toMatchObject({ jurisdiction: 'uk', studyId: 'UK-CLI' });

    const ingest = steward('ingest', path.join(out, 'package'), '--json');
    expect(ingest.code, ingest.stderr).toBe(0);
    record = JSON.parse(ingest.stdout).record as DatasetRecord;
    expect(record.jurisdiction).toBe('uk');
    expect(record.lineage.submittedBy).toMatchObject({
      id: 'Demo Steward',
      role: 'steward',
      serial: expect.any(String),
    });
    expect(steward('ingest', path.join(out, 'package')).stdout).toContain(
      `Dataset ${record.datasetId} (already ingested)`,
    );
    const list = JSON.parse(steward('datasets', 'list', '--json').stdout) as DatasetRecord[];
    expect(list.map((r) => r.datasetId)).toEqual([record.datasetId]);
    expect(steward('datasets', 'show', record.datasetId).stdout).toContain(
      `rows: ${record.rows.in} in, ${record.rows.curated} curated`,
    );
  });

  it.each([
    [
      'a byte appended to a table',
      (dir: string) => appendFile(path.join(dir, 'data', 'labs.csv'), 'x'),
      'data/labs.csv: SHA-256 mismatch',
    ],
    [
      'an extra file in data/',
      (dir: string) => writeFile(path.join(dir, 'data', 'extra.csv'), 'a\n'),
      'data/extra.csv: not listed in manifest-sha256.txt',
    ],
    [
      'a symbolic link in place of a table',
      async (dir: string) => {
        const target = path.join(dir, '..', 'outside.csv');
        await rename(path.join(dir, 'data', 'visits.csv'), target);
        await symlink(target, path.join(dir, 'data', 'visits.csv'));
      },
      'data/visits.csv: unreadable: symbolic links are not accepted',
    ],
    [
      'a wrong Payload-Oxum',
      async (dir: string) => {
        const info = await readFile(path.join(dir, 'bag-info.txt'), 'utf8');
        await writeFile(path.join(dir, 'bag-info.txt'), info.replace(/Payload-Oxum: (\d+)\./, 'Payload-Oxum: 1.'));
      },
      'bag-info.txt, field "Payload-Oxum": declares 1 bytes',
    ],
  ])('refuses a re-submission with %s: exit 3, file and rule named, dataset untouched', async (_, damage, rule) => {
    const copy = path.join(await tempDir(), 'package');
    await cp(path.join(out, 'package'), copy, { recursive: true });
    await damage(copy);
    const again = steward('ingest', copy);
    expect(again.code).toBe(3);
    expect(again.stderr).toContain(
      `does not match its manifest; nothing was submitted, and dataset ${record.datasetId}`,
    );
    expect(again.stderr).toContain(rule);
    const shown = JSON.parse(steward('datasets', 'show', record.datasetId, '--json').stdout) as DatasetRecord;
    expect(shown).toEqual(record);
    const s3 = createS3Client(JSON.parse(steward('status', '--json').stdout).s3);
    for (const o of record.outputs) expect(await objectVersions(s3, o.bucket, o.key)).toBe(1);
    s3.destroy();
  });

  it('records a withdrawal for the dpo only; the same request id finds the first run', async () => {
    const firstSubject = (await readFile(path.join(out, 'package', 'data', 'subjects.csv'), 'utf8'))
      .split('\n')[1]!
      .split(',')[0]!;
    const withdraw = ['consent', 'withdraw', '--subject', firstSubject, '--study', 'UK-CLI', '--jurisdiction', 'uk'];
    const denied = steward(...withdraw, '--reason', 'call');
    expect(denied.code).toBe(6);
    expect(verdict(denied.stderr)).toBe(
      'steward: access denied: Demo Steward (role steward) may not consent.withdraw; allowed roles: dpo',
    );
    const request = [...withdraw, '--reason', 'call', '--request-id', 'withdraw-cli-1', '--json'];
    const first = steward('--identity', dpoIdentity(), ...request);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ status: 'withdrawn', keyVersionsSearched: [1] });
    const again = steward('--identity', dpoIdentity(), ...request);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain('found request withdraw-cli-1 started earlier');
    expect(JSON.parse(again.stdout)).toEqual(JSON.parse(first.stdout));

    // The same request id with another subject is not that request: refused, naming the parameter, not its value.
    const otherSubject = (await readFile(path.join(out, 'package', 'data', 'subjects.csv'), 'utf8'))
      .split('\n')[2]!
      .split(',')[0]!;
    const reused = steward('--identity', dpoIdentity(), ...request.map((a) => (a === firstSubject ? otherSubject : a)));
    expect({ code: reused.code, stdout: reused.stdout, verdict: verdict(reused.stderr) }).toEqual({
      code: 2,
      stdout: '',
      verdict:
        'steward: --request-id withdraw-cli-1 names an earlier request that differs from this one (params.subjectId); nothing was done. Run the command without --request-id to make a new request.',
    });
    expect(reused.stderr).not.toContain(otherSubject);
    expect(reused.stderr).not.toContain(firstSubject);

    // A run that failed is shown as it failed, with its exit code, however often it is asked for again.
    const refused = [...withdraw, '--reason', 'call', '--request-id', 'withdraw-cli-0'];
    expect(steward(...refused).code).toBe(6);
    const refusedAgain = steward(...refused);
    expect(refusedAgain.stderr).toContain('found request withdraw-cli-0 started earlier');
    expect({ code: refusedAgain.code, verdict: verdict(refusedAgain.stderr) }).toEqual({
      code: 6,
      verdict: 'steward: access denied: Demo Steward (role steward) may not consent.withdraw; allowed roles: dpo',
    });
  });

  it('rotates keys, re-pseudonymizes, and re-identifies for the dpo only', async () => {
    const rotated = steward('keys', 'rotate', '--jurisdiction', 'uk', '--study', 'UK-CLI', '--json');
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(JSON.parse(rotated.stdout)).toMatchObject({ previousVersion: 1, currentVersion: 2 });
    expect(rotated.stderr).toMatch(
      /request [0-9a-f-]{36} \(if this command is interrupted, run it again with --request-id/,
    );

    const migrated = steward('datasets', 'repseudonymize', record.datasetId, '--json');
    expect(migrated.code, migrated.stderr).toBe(0);
    expect(JSON.parse(migrated.stdout)).toMatchObject({ fromVersions: [1], toVersion: 2, migrated: true });
    expect(steward('datasets', 'repseudonymize', record.datasetId).stdout).toContain('already uses key v2');
    const shown = JSON.parse(steward('datasets', 'show', record.datasetId, '--json').stdout) as DatasetRecord;
    expect(shown.keyVersions).toEqual([2]);

    const consented = (await readFile(path.join(out, 'consent.csv'), 'utf8'))
      .split('\n')
      .map((line) => line.split(','))
      .find((f) => f[2] === 'given' && f[1]!.split(';').includes('primary-research'))![0]!;
    const keys = await FileKeyStore.open(path.join(dataDir, 'keys'));
    const token = tokenize((await keys.studyKeyVersion('uk', 'UK-CLI', 2)).material, 2, consented);
    const reidentify = ['reidentify', token, '--jurisdiction', 'uk', '--study', 'UK-CLI', '--reason', 'safety signal'];
    const refused = steward(...reidentify);
    expect(refused.code).toBe(6);
    expect(verdict(refused.stderr)).toBe(
      'steward: access denied: Demo Steward (role steward) may not reidentify; allowed roles: dpo',
    );
    const resolved = steward('--identity', dpoIdentity(), ...reidentify);
    expect(resolved.code, resolved.stderr).toBe(0);
    expect(resolved.stdout.trim()).toBe(consented);
    const unknownToken = steward(
      '--identity',
      dpoIdentity(),
      'reidentify',
      `v2.${'A'.repeat(43)}`,
      ...reidentify.slice(2),
    );
    expect(unknownToken.code).toBe(4);
  });

  it('reports bad packages and bad input with the right exit codes', async () => {
    const bad = await writeBag(await tempDir(), smallMetadata({ studyId: 'UK-CLI', jurisdiction: 'uk' }), {
      'data/visits.csv': 'subject_id,full_name,visit_date,score,note\nU-1,Al,2025-01-02,many,\n',
    });
    const rejected = steward('ingest', bad);
    expect(rejected.code).toBe(3);
    expect(rejected.stderr).toContain(
      'steward: package rejected and moved to quarantine; nothing was curated\n  data/visits.csv, row 1, field "score": must be an integer\n',
    );

    const unknown = steward(
      'consent',
      'import',
      path.join(out, 'consent.csv'),
      '--jurisdiction',
      'mars',
      '--study',
      'S',
    );
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatchInlineSnapshot(`
      "steward: unknown jurisdiction "mars"; known jurisdictions: ch, eu, uk, us
      "
    `);

    const badMeta = await tempDir();
    await writeBag(badMeta, smallMetadata({ jurisdiction: 'uk' }), { 'data/visits.csv': 'x\n' });
    await writeFile(
      path.join(badMeta, 'steward.json'),
      JSON.stringify({ ...smallMetadata({ jurisdiction: 'uk' }), studyId: 'UK CLI!' }),
    );
    const invalid = steward('ingest', badMeta);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr.replace(badMeta, '<dir>')).toMatchInlineSnapshot(`
      "steward: <dir>/steward.json: invalid package metadata
      ✖ must be 1-64 letters, digits, ".", "_" or "-", starting alphanumeric
        → at studyId
      "
    `);
  });

  it('issues an identity under a passphrase, revokes it, and then refuses its requests', async () => {
    const dir = path.join(await tempDir(), 'ada');
    const env = { STEWARD_PASSPHRASE: 'a long passphrase for ada' };
    const issued = stewardWith(
      env,
      'identity',
      'issue',
      '--name',
      'Ada Auditor',
      '--role',
      'auditor',
      '--out',
      dir,
      '--json',
    );
    expect(issued.code, issued.stderr).toBe(0);
    const serial = JSON.parse(issued.stdout).serial as string;
    const query = [
      '--identity',
      dir,
      'audit',
      'query',
      '--jurisdiction',
      'uk',
      '--action',
      'identity.issued',
      '--json',
    ];
    const allowed = stewardWith(env, ...query);
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(
      JSON.parse(allowed.stdout).events.map((e: { event: { details: { serial: string } } }) => e.event.details.serial),
    ).toContain(serial);
    expect(stewardWith({ STEWARD_PASSPHRASE: 'not the passphrase' }, ...query).stderr).toContain(
      `the passphrase does not open ${path.join(dir, 'private-key.pem')}`,
    );
    expect(steward('identity', 'revoke', dir, '--reason', 'left the audit team').code).toBe(0);
    const refused = stewardWith(env, ...query);
    expect(refused.code).toBe(6);
    expect(verdict(refused.stderr)).toBe(`steward: the certificate ${serial} is revoked`);
  });

  it('destroys a retired key version on an e-signed request; OpenSSL accepts the certificate and rejects a changed one', async () => {
    const active = steward(
      '--identity',
      dpoIdentity(),
      'keys',
      'destroy',
      '--jurisdiction',
      'uk',
      '--study',
      'UK-CLI',
      '--version',
      '2',
    );
    expect(active.code).toBe(1);
    expect(verdict(active.stderr)).toContain('is the current key of study UK-CLI: rotate it first');
    const destroyed = steward(
      '--identity',
      dpoIdentity(),
      'keys',
      'destroy',
      '--jurisdiction',
      'uk',
      '--study',
      'UK-CLI',
      '--version',
      '1',
      '--json',
    );
    expect(destroyed.code, destroyed.stderr).toBe(0);
    const { certificateId, versions } = JSON.parse(destroyed.stdout);
    expect(versions.map((v: { state: string }) => v.state)).toEqual(['destroyed', 'active']);

    const out = await tempDir('steward-cert-');
    const shown = steward('cert', 'show', certificateId, '--out', out);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(`CERTIFICATE OF SANITIZATION ${certificateId}`);
    expect(shown.stdout).toMatch(
      /Requested by: Demo DPO \(dpo\), .* UTC — meaning: approve cryptographic erase of study\/uk\/UK-CLI\/v1/,
    );
    const openssl = (content: string) =>
      opensslCmsVerify({
        p7s: path.join(out, 'cert.p7s'),
        content: path.join(out, content),
        ca: path.join(out, 'ca.pem'),
      });
    expect(openssl('cert.json').status).toBe(0);
    const json = await readFile(path.join(out, 'cert.json'));
    const changed = Buffer.from(json);
    const at = json.indexOf('"key-destruction"') + 1;
    changed[at] = changed[at]! ^ 0x20;
    await writeFile(path.join(out, 'changed.json'), changed);
    expect(openssl('changed.json').status).not.toBe(0);

    expect(steward('cert', 'verify', certificateId).stdout).toContain(`certificate ${certificateId} verifies`);
    await cp(path.join(out, 'cert.p7s'), path.join(out, 'changed.p7s'));
    const tampered = steward('cert', 'verify', path.join(out, 'changed.json'), '--ca', path.join(out, 'ca.pem'));
    expect(tampered.code).toBe(7);
    expect(tampered.stdout).toContain(
      'signature: the content does not match the signed message digest: it was changed after signing',
    );
  });

  it('verifies the audit trail, reports a changed copy with its position, and proves one event offline', async () => {
    const verified = steward('audit', 'verify', '--jurisdiction', 'uk');
    expect(verified.code, verified.stdout).toBe(0);
    expect(verified.stdout).toMatch(
      /^audit trail uk: \d+ segments, \d+ events; chain, Merkle roots and signatures verify/,
    );

    const copy = await tempDir('steward-trail-');
    expect(steward('audit', 'export', '--jurisdiction', 'uk', '--out', copy).code).toBe(0);
    const first = path.join(copy, '000000000000.json');
    const segment = JSON.parse(await readFile(first, 'utf8'));
    segment.entries[0].event.reason = 'edited afterwards';
    await writeFile(first, JSON.stringify(segment));
    const tampered = steward('audit', 'verify', '--jurisdiction', 'uk', '--from', copy);
    expect(tampered.code).toBe(7);
    expect(tampered.stdout).toContain(
      `segment 0, position 0, event ${segment.entries[0].event.id}: event does not match its chain hash`,
    );

    const events = JSON.parse(
      steward(
        '--identity',
        dpoIdentity(),
        'audit',
        'query',
        '--jurisdiction',
        'uk',
        '--action',
        'key.destroyed',
        '--json',
      ).stdout,
    ).events;
    const proofFile = path.join(copy, 'proof.json');
    expect(steward('audit', 'prove', events[0].event.id, '--jurisdiction', 'uk', '--out', proofFile).code).toBe(0);
    const proven = steward('audit', 'verify-proof', proofFile, '--ca', path.join(copy, 'ca.pem'));
    expect(proven.code, proven.stdout).toBe(0);
    expect(proven.stdout).toContain(`is at position ${events[0].position} of the uk audit trail`);
    const proof = JSON.parse(await readFile(proofFile, 'utf8'));
    proof.event.principal.id = 'Someone Else';
    await writeFile(proofFile, JSON.stringify(proof));
    const forged = steward('audit', 'verify-proof', proofFile, '--ca', path.join(copy, 'ca.pem'));
    expect(forged.code).toBe(7);
    expect(forged.stdout).toContain('the event and its audit path do not lead to the signed Merkle root');
  });

  it('shows retention, holds a dataset, records the end of the trial, sweeps, and certifies the deletion', async () => {
    const schedule = steward('retention', 'schedule', 'show', '--jurisdiction', 'uk');
    expect(schedule.code, schedule.stderr).toBe(0);
    expect(schedule.stdout).toContain('Schedule retention-sweep-uk (uk): active');
    expect(schedule.stdout).toContain('"0 2 * * *" UTC');
    expect(steward('hold', 'set', '--dataset', record.datasetId, '--study', 'UK-CLI', '--reason', 'x y z').code).toBe(
      2,
    );

    const held = steward(
      '--identity',
      dpoIdentity(),
      'hold',
      'set',
      '--dataset',
      record.datasetId,
      '--reason',
      'matter 12',
    );
    expect(held.code, held.stderr).toBe(0);
    expect(held.stdout).toMatch(/^Legal hold hold-[0-9a-f]{32} set on dataset /);
    const shown = steward('datasets', 'show', record.datasetId);
    expect(shown.stdout).toContain(
      'retention until open (rule clinical-trial: P25Y from end-of-trial, not recorded yet)',
    );
    expect(shown.stdout).toMatch(
      /LEGAL HOLD hold-[0-9a-f]{32} on the dataset since .*: matter 12 — set by Demo DPO \(dpo\)/,
    );

    const ended = steward('trial', 'end', '--jurisdiction', 'uk', '--study', 'UK-CLI', '--date', '1990-01-01');
    expect(ended.code, ended.stderr).toBe(0);
    expect(ended.stdout).toContain(`${record.datasetId}  clinical-trial  retain until 2015-01-01`);
    const auditor = path.join(dataDir, 'identities', 'auditor');
    const preview = steward('--identity', auditor, 'retention', 'sweep', '--jurisdiction', 'uk', '--dry-run');
    expect(preview.code, preview.stderr).toBe(0);
    expect(preview.stdout).toMatch(new RegExp(`held +dataset ${record.datasetId}`));
    expect(preview.stderr).toContain('watch it in the Temporal UI: http://127.0.0.1:');
    const denied = steward('--identity', auditor, 'retention', 'sweep', '--jurisdiction', 'uk');
    expect(denied.code).toBe(6);
    const early = steward('retention', 'sweep', '--jurisdiction', 'uk', '--as-of', '2999-01-01');
    expect(early.code).toBe(2);
    expect(verdict(early.stderr)).toContain('use --dry-run to see what would expire then');

    expect(steward('hold', 'release', '--dataset', record.datasetId, '--reason', 'matter 12 closed').code).toBe(0);
    const swept = steward('retention', 'sweep', '--jurisdiction', 'uk', '--json');
    expect(swept.code, swept.stderr).toBe(0);
    const item = (
      JSON.parse(swept.stdout) as { items: { id: string; outcome: string; certificateId?: string }[] }
    ).items.find((i) => i.id === record.datasetId)!;
    expect(item.outcome).toBe('deleted');
    expect(steward('datasets', 'show', record.datasetId).code).toBe(4);
    const verified = steward('cert', 'verify', item.certificateId!);
    expect(verified.code, verified.stdout).toBe(0);
    const certDir = await tempDir('steward-cli-cert-');
    expect(steward('cert', 'show', item.certificateId!, '--out', certDir).code).toBe(0);
    const openssl = opensslCmsVerify({
      p7s: path.join(certDir, 'cert.p7s'),
      content: path.join(certDir, 'cert.json'),
      ca: path.join(certDir, 'ca.pem'),
    });
    expect(openssl.status, openssl.stderr).toBe(0);

    const ops = path.join(dataDir, 'identities', 'ops');
    const trigger = steward('--identity', ops, 'retention', 'schedule', 'trigger', '--jurisdiction', 'uk');
    expect(trigger.code, trigger.stderr).toBe(0);
    expect(trigger.stdout).toContain('Started a sweep of uk now');
  });

  it('stops without having to kill any of its processes', async () => {
    expect(steward('down').code).toBe(0);
    expect(steward('status').code).toBe(4);
    expect(await readFile(path.join(dataDir, 'logs', 'supervisor.log'), 'utf8')).not.toContain('was killed');
  });
});
