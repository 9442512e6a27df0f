import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { once } from 'node:events';
import { Faker, en } from '@faker-js/faker';
import type { PackageMetadata } from '../../schemas/package';
import { PACKAGE_METADATA_FILE } from '../../schemas/package';
import { signatureFileOf, signedFileOf } from '../../lib/package/source';
import { signDetached } from '../../lib/pki/cms';

export interface DemoOptions {
  out: string;
  jurisdiction: string;
  studyId: string;
  /** Lab result rows, the table that grows with `rows`. */
  rows: number;
  subjects: number;
  seed: number;
  purpose?: string;
  /** The data class whose retention rule its dataset gets (default clinical-trial). */
  dataClass?: string;
  /** Keep a re-identification vault for the study's tokens (metadata `reidentificationVault`). */
  vault?: boolean;
  /** Write one lab row with an impossible date, so the package is rejected (the demo's failed ingestion). */
  badRow?: boolean;
  /** Sign the bag as this source system: a tag manifest, and its detached CMS signature. */
  source?: { certificatePem: string; privateKeyPem: string };
  onProgress?: (rowsWritten: number, total: number) => void;
}

export interface DemoResult {
  packageDir: string;
  consentFile: string;
  subjects: number;
  consent: { given: number; withdrawn: number; scopeOnly: number; never: number };
}

const SCOPES_FULL = 'primary-research;secondary-research';
const LAB_TESTS = [
  ['HGB', 'Hemoglobin', 'g/dL', 12, 17.5],
  ['WBC', 'White blood cell count', '10^9/L', 4, 11],
  ['PLT', 'Platelets', '10^9/L', 150, 400],
  ['ALT', 'Alanine aminotransferase', 'U/L', 7, 56],
  ['AST', 'Aspartate aminotransferase', 'U/L', 10, 40],
  ['CREAT', 'Creatinine', 'mg/dL', 0.6, 1.3],
  ['GLU', 'Glucose', 'mg/dL', 70, 100],
  ['NA', 'Sodium', 'mmol/L', 135, 145],
] as const;
const AE_TERMS = ['Headache', 'Nausea', 'Fatigue', 'Injection site reaction', 'Dizziness', 'Rash', 'Insomnia'];

function csvField(value: string | number | boolean | null): string {
  if (value === null) return '';
  const s = String(value);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

class HashedWriter {
  private readonly stream;
  private readonly hash = createHash('sha256');
  bytes = 0;
  constructor(readonly file: string) {
    this.stream = createWriteStream(file);
  }
  async write(text: string): Promise<void> {
    const buf = Buffer.from(text, 'utf8');
    this.hash.update(buf);
    this.bytes += buf.length;
    if (!this.stream.write(buf)) await once(this.stream, 'drain');
  }
  async close(): Promise<{ sha256: string; bytes: number }> {
    this.stream.end();
    await once(this.stream, 'finish');
    return { sha256: this.hash.digest('hex'), bytes: this.bytes };
  }
}

function isoDate(d: Date): string {
  return d.toISOString().slice(0, 10);
}

/** The column policy and types of the demo package, as a steward would declare them. */
export function demoMetadata(jurisdiction: string, studyId: string, purpose: string): PackageMetadata {
  const id = (name: string, role: 'subject-id' | 'direct-identifier' = 'direct-identifier') => ({
    name,
    type: 'string' as const,
    role,
    required: role === 'subject-id',
  });
  const value = (name: string, type: 'string' | 'integer' | 'number' | 'boolean' = 'string', required = false) => ({
    name,
    type,
    role: 'value' as const,
    required,
  });
  const date = (name: string, required = false) => ({ name, type: 'date' as const, role: 'date' as const, required });
  const zip3 = (name: string) => ({
    name,
    type: 'string' as const,
    role: 'generalize' as const,
    method: 'zip3' as const,
    required: false,
  });
  const year = (name: string) => ({
    name,
    type: 'date' as const,
    role: 'generalize' as const,
    method: 'year' as const,
    required: true,
  });
  const text = (name: string) => ({ name, type: 'string' as const, role: 'free-text' as const, required: false });
  return {
    studyId,
    protocolId: `${studyId}-PROT-v3`,
    jurisdiction,
    dataClass: 'clinical-trial',
    purpose,
    sourceSystem: 'synthetic-edc',
    dateShiftDays: 180,
    tables: [
      {
        path: 'data/subjects.csv',
        name: 'subjects',
        format: 'csv',
        columns: [
          id('subject_id', 'subject-id'),
          id('mrn'),
          id('first_name'),
          id('last_name'),
          id('email'),
          year('date_of_birth'),
          value('sex'),
          zip3('zip'),
          value('site_id', 'string', true),
          date('enrolled_on', true),
        ],
      },
      {
        path: 'data/visits.csv',
        name: 'visits',
        format: 'csv',
        columns: [
          id('subject_id', 'subject-id'),
          value('visit_no', 'integer', true),
          date('visit_date', true),
          value('weight_kg', 'number'),
          value('systolic_bp', 'integer'),
          value('diastolic_bp', 'integer'),
          text('notes'),
        ],
      },
      {
        path: 'data/labs.csv',
        name: 'labs',
        format: 'csv',
        columns: [
          id('subject_id', 'subject-id'),
          value('visit_no', 'integer', true),
          date('collected_on', true),
          value('test_code', 'string', true),
          value('test_name'),
          value('value', 'number'),
          value('unit'),
          value('ref_low', 'number'),
          value('ref_high', 'number'),
          value('abnormal', 'boolean'),
          value('site_id'),
          text('comment'),
        ],
      },
      {
        path: 'data/adverse_events.ndjson',
        name: 'adverse_events',
        format: 'ndjson',
        columns: [
          id('subject_id', 'subject-id'),
          date('onset_date', true),
          value('term', 'string', true),
          value('severity'),
          value('serious', 'boolean'),
          text('narrative'),
        ],
      },
    ],
  };
}

/**
 * Writes a seeded synthetic clinical-trial package (BagIt) and its consent CSV. Same options → same bytes.
 * Identifiers, names, e-mails, dates of birth, ZIP codes and free-text notes are all synthetic.
 */
export async function generateDemoPackage(options: DemoOptions): Promise<DemoResult> {
  const faker = new Faker({ locale: [en] });
  faker.seed(options.seed);
  const purpose = options.purpose ?? 'primary-research';
  const prefix = options.jurisdiction.toUpperCase();
  const packageDir = path.join(options.out, 'package');
  await rm(packageDir, { recursive: true, force: true });
  await mkdir(path.join(packageDir, 'data'), { recursive: true });
  const base = new Date(Date.UTC(2025, 0, 6));
  const day = 86_400_000;

  const subjects = Array.from({ length: options.subjects }, (_, i) => {
    const sex = faker.helpers.arrayElement(['F', 'M'] as const);
    const firstName = faker.person.firstName(sex === 'F' ? 'female' : 'male');
    const lastName = faker.person.lastName();
    return {
      id: `${prefix}-${options.studyId}-${String(100000 + i * 7 + faker.number.int(6)).padStart(6, '0')}`,
      mrn: `MRN${faker.string.numeric(8)}`,
      firstName,
      lastName,
      email: faker.internet.email({ firstName, lastName }).toLowerCase(),
      dob: isoDate(faker.date.birthdate({ min: 18, max: 95, mode: 'age', refDate: base })),
      sex,
      zip: faker.location.zipCode('#####'),
      site: `SITE-${faker.number.int({ min: 1, max: 12 }).toString().padStart(2, '0')}`,
      enrolled: new Date(base.getTime() + faker.number.int(120) * day),
      consent: faker.helpers.weightedArrayElement([
        { weight: 80, value: 'given' as const },
        { weight: 7, value: 'scope-only' as const },
        { weight: 6, value: 'withdrawn' as const },
        { weight: 7, value: 'never' as const },
      ]),
    };
  });

  const manifest: { path: string; sha256: string; bytes: number }[] = [];
  const finish = async (w: HashedWriter, rel: string) => manifest.push({ path: rel, ...(await w.close()) });

  let w = new HashedWriter(path.join(packageDir, 'data', 'subjects.csv'));
  await w.write('subject_id,mrn,first_name,last_name,email,date_of_birth,sex,zip,site_id,enrolled_on\n');
  for (const s of subjects) {
    await w.write(
      `${[s.id, s.mrn, s.firstName, s.lastName, s.email, s.dob, s.sex, s.zip, s.site, isoDate(s.enrolled)].map(csvField).join(',')}\n`,
    );
  }
  await finish(w, 'data/subjects.csv');

  w = new HashedWriter(path.join(packageDir, 'data', 'visits.csv'));
  await w.write('subject_id,visit_no,visit_date,weight_kg,systolic_bp,diastolic_bp,notes\n');
  for (const s of subjects) {
    for (let v = 1; v <= 3; v++) {
      const note =
        faker.helpers.maybe(
          () =>
            `${s.firstName} reported ${faker.helpers.arrayElement(['mild headache', 'no complaints', 'poor sleep, "tired"', 'dizziness after dosing'])}`,
          { probability: 0.4 },
        ) ?? null;
      await w.write(
        `${[s.id, v, isoDate(new Date(s.enrolled.getTime() + (v - 1) * 28 * day)), faker.number.float({ min: 48, max: 120, fractionDigits: 1 }), faker.number.int({ min: 100, max: 160 }), faker.number.int({ min: 60, max: 100 }), note].map(csvField).join(',')}\n`,
      );
    }
  }
  await finish(w, 'data/visits.csv');

  w = new HashedWriter(path.join(packageDir, 'data', 'labs.csv'));
  await w.write(
    'subject_id,visit_no,collected_on,test_code,test_name,value,unit,ref_low,ref_high,abnormal,site_id,comment\n',
  );
  const batch: string[] = [];
  for (let i = 0; i < options.rows; i++) {
    const s = subjects[faker.number.int(subjects.length - 1)]!;
    const [code, name, unit, low, high] = LAB_TESTS[i % LAB_TESTS.length]!;
    const visit = 1 + (i % 3);
    const value = Math.round((low + (high - low) * (faker.number.float() * 1.4 - 0.2)) * 100) / 100;
    const comment = i % 50 === 0 ? `repeat sample for ${s.lastName}` : '';
    const collected =
      options.badRow && i === Math.floor(options.rows / 2)
        ? '2025-02-30'
        : isoDate(new Date(s.enrolled.getTime() + (visit - 1) * 28 * day));
    batch.push(
      `${s.id},${visit},${collected},${code},${name},${value},${unit},${low},${high},${value < low || value > high},${s.site},${comment}\n`,
    );
    if (batch.length === 5000) {
      await w.write(batch.join(''));
      batch.length = 0;
      options.onProgress?.(i + 1, options.rows);
    }
  }
  await w.write(batch.join(''));
  options.onProgress?.(options.rows, options.rows);
  await finish(w, 'data/labs.csv');

  w = new HashedWriter(path.join(packageDir, 'data', 'adverse_events.ndjson'));
  for (const s of subjects) {
    if (faker.number.float() > 0.3) continue;
    await w.write(
      `${JSON.stringify({
        subject_id: s.id,
        onset_date: isoDate(new Date(s.enrolled.getTime() + faker.number.int(90) * day)),
        term: faker.helpers.arrayElement(AE_TERMS),
        severity: faker.helpers.arrayElement(['mild', 'moderate', 'severe']),
        serious: faker.number.float() < 0.05,
        narrative: `${s.firstName} ${s.lastName} called the site nurse.`,
      })}\n`,
    );
  }
  await finish(w, 'data/adverse_events.ndjson');

  const metadata = {
    ...demoMetadata(options.jurisdiction, options.studyId, purpose),
    ...(options.dataClass ? { dataClass: options.dataClass } : {}),
    ...(options.vault ? { reidentificationVault: true } : {}),
  };
  await writeFile(path.join(packageDir, PACKAGE_METADATA_FILE), `${JSON.stringify(metadata, null, 2)}\n`);
  await writeFile(path.join(packageDir, 'bagit.txt'), 'BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n');
  const octets = manifest.reduce((sum, m) => sum + m.bytes, 0);
  await writeFile(
    path.join(packageDir, 'bag-info.txt'),
    [
      `Source-Organization: Synthetic Clinical Sites (${options.jurisdiction.toUpperCase()})`,
      `Bagging-Date: ${isoDate(base)}`,
      `External-Identifier: ${options.studyId}-export-${options.seed}`,
      `Payload-Oxum: ${octets}.${manifest.length}`,
      '',
    ].join('\n'),
  );
  await writeFile(
    path.join(packageDir, 'manifest-sha256.txt'),
    manifest.map((m) => `${m.sha256}  ${m.path}\n`).join(''),
  );
  // The tag manifest covers the payload manifest, bag-info.txt and the metadata: what a source's signature covers.
  const tagFiles = ['bagit.txt', 'bag-info.txt', 'manifest-sha256.txt', PACKAGE_METADATA_FILE];
  const tagManifest = (
    await Promise.all(
      tagFiles.map(
        async (f) =>
          `${createHash('sha256')
            .update(await readFile(path.join(packageDir, f)))
            .digest('hex')}  ${f}\n`,
      ),
    )
  ).join('');
  await writeFile(path.join(packageDir, signedFileOf('bagit')), tagManifest);
  if (options.source) {
    await writeFile(
      path.join(packageDir, signatureFileOf('bagit')),
      signDetached(Buffer.from(tagManifest), options.source, [], base),
    );
  }

  const consentFile = path.join(options.out, 'consent.csv');
  const lines = ['subject_id,scopes,status,icf_version,given_on,withdrawn_on,expires_on'];
  const counts = { given: 0, withdrawn: 0, scopeOnly: 0, never: 0 };
  for (const s of subjects) {
    const given = isoDate(new Date(s.enrolled.getTime() - 7 * day));
    if (s.consent === 'never') counts.never += 1;
    else if (s.consent === 'given') {
      counts.given += 1;
      lines.push([s.id, SCOPES_FULL, 'given', 'ICF-v2.1', given, '', ''].join(','));
    } else if (s.consent === 'scope-only') {
      counts.scopeOnly += 1;
      lines.push([s.id, 'biobank-storage', 'given', 'ICF-v2.1', given, '', ''].join(','));
    } else {
      counts.withdrawn += 1;
      lines.push(
        [
          s.id,
          SCOPES_FULL,
          'withdrawn',
          'ICF-v2.1',
          given,
          isoDate(new Date(s.enrolled.getTime() + 30 * day)),
          '',
        ].join(','),
      );
    }
  }
  await writeFile(consentFile, `${lines.join('\n')}\n`);
  return { packageDir, consentFile, subjects: subjects.length, consent: counts };
}
