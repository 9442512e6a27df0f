import { describe, expect, it } from 'vitest';
import { accessPackagePrefix, accessPackageRequestId } from '../../lib/storage/layout';
import { describePlace, itemIdOf } from '../../lib/subject-rights/places';
import { fieldPattern } from '../../lib/subject-rights/uploads';

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
