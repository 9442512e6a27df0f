import { describe, expect, it } from 'vitest';
import { accessPackagePrefix, accessPackageRequestId } from '../../lib/storage/layout';
import { describePlace, itemIdOf } from '../../lib/subject-rights/places';
import { fieldPattern } from '../../lib/subject-rights/uploads';
import { withoutSubject } from '../../lib/subject-rights/upload-rewrite';
import type { Table } from '../../schemas/package';

describe('finding a subject in a raw upload', () => {
  const pattern = fieldPattern('AB-12');
  it('matches the identifier as a whole CSV, TSV or JSON field', () => {
    expect(pattern.test('AB-12,Jo,2025-01-01')).toBe(true);
    expect(pattern.test('x,AB-12')).toBe(true);
    expect(pattern.test('x\tAB-12\ty')).toBe(true);
    expect(pattern.test('{"subject_id": "AB-12", "v": 1}')).toBe(true);
    expect(pattern.test('"AB-12";"Jo"')).toBe(true);
  });
  it('does not match another identifier that contains it, or a pattern read as a regular expression', () => {
    expect(pattern.test('AB-123,Jo')).toBe(false);
    expect(pattern.test('XAB-12,Jo')).toBe(false);
    expect(fieldPattern('A.1').test('AB1,x')).toBe(false);
    expect(fieldPattern('A.1').test('A.1,x')).toBe(true);
  });
});

describe('places of an erasure', () => {
  it('each kind has an item id and a description naming where it is', () => {
    const upload = {
      kind: 'upload' as const,
      role: 'landing' as const,
      bucket: 'steward-eu-landing',
      prefix: 'packages/p1/',
      packageId: 'p1',
      studyId: 'ST-1',
      files: 2,
    };
    expect(itemIdOf(upload)).toBe('upload/landing/p1');
    expect(describePlace(upload)).toContain('s3://steward-eu-landing/packages/p1/');
    const exported = { kind: 'export' as const, requestId: 'r-1', bucket: 'steward-eu-exports', prefix: 'access/r-1/' };
    expect(itemIdOf(exported)).toBe('export/r-1');
    expect(accessPackageRequestId(accessPackagePrefix('r-1'))).toBe('r-1');
    expect(accessPackageRequestId('access/r-1/manifest.json')).toBeUndefined();
  });
});

describe('rewriting a raw table without a subject', () => {
  const table = (format: 'csv' | 'ndjson'): Table => ({
    path: 'data/t',
    name: 't',
    format,
    columns: [
      { name: 'subject_id', type: 'string', role: 'subject-id', required: true },
      { name: 'note', type: 'string', role: 'free-text', required: false },
    ],
  });

  it('drops exactly the subject’s CSV records and keeps every other byte: BOM, CRLF, quoted line breaks, last line', () => {
    const csv = '\ufeffsubject_id,note\r\nAB-12,"one\r\nline"\r\nAB-123,"AB-12 was here"\r\n AB-12 ,x\r\nCD-9,last';
    const out = withoutSubject(Buffer.from(csv, 'utf8'), table('csv'), 'AB-12');
    // ' AB-12 ' canonicalizes to AB-12, as ingestion tokenized it.
    expect(out.bytes.toString('utf8')).toBe('\ufeffsubject_id,note\r\nAB-123,"AB-12 was here"\r\nCD-9,last');
    expect(out).toMatchObject({ rowsBefore: 4, rowsAfter: 2 });
  });

  it('finds the subject column by its header, wherever it is, and leaves a table without the subject as it was', () => {
    const csv = 'note,subject_id\nx,AB-12\nAB-12,CD-9\n';
    expect(withoutSubject(Buffer.from(csv), table('csv'), 'AB-12').bytes.toString()).toBe(
      'note,subject_id\nAB-12,CD-9\n',
    );
    const none = withoutSubject(Buffer.from(csv), table('csv'), 'ZZ-1');
    expect(none.bytes.equals(Buffer.from(csv))).toBe(true);
    expect(none).toMatchObject({ rowsBefore: 2, rowsAfter: 2 });
  });

  it('drops the subject’s NDJSON lines by field, not by text', () => {
    const ndjson = '{"subject_id":"AB-12","note":"a"}\n{"subject_id":"CD-9","note":"AB-12"}\n\n{"subject_id":"AB-12"}';
    const out = withoutSubject(Buffer.from(ndjson), table('ndjson'), 'AB-12');
    expect(out.bytes.toString()).toBe('{"subject_id":"CD-9","note":"AB-12"}\n\n');
    expect(out).toMatchObject({ rowsBefore: 3, rowsAfter: 1 });
  });
});
