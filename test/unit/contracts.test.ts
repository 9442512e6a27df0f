import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorType, searchAttributeFlags, SEARCH_ATTRIBUTES } from '../../contracts';

const ROOT = path.join(__dirname, '..', '..');
const SOURCE_DIRS = ['activities', 'cli', 'contracts', 'lib', 'schemas', 'workers', 'workflows'];

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return sources(full);
    return full.endsWith('.ts') ? [full] : [];
  });
}

describe('search attributes', () => {
  it('the dev server flags come from the one list', () => {
    expect(searchAttributeFlags()).toEqual(
      Object.values(SEARCH_ATTRIBUTES).flatMap((k) => ['--search-attribute', `${k.name}=Keyword`]),
    );
    expect(Object.values(SEARCH_ATTRIBUTES).map((k) => k.name)).toEqual([
      'Jurisdiction',
      'StudyId',
      'DatasetId',
      'RequestId',
      'RequestKind',
    ]);
  });

  it('docker-compose registers exactly the same ones', () => {
    const compose = readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8');
    const registered = [...compose.matchAll(/--search-attribute=([A-Za-z]+)=Keyword/g)].map((m) => m[1]);
    expect(registered).toEqual(Object.values(SEARCH_ATTRIBUTES).map((k) => k.name));
  });
});

describe('failure types', () => {
  const files = SOURCE_DIRS.flatMap((d) => sources(path.join(ROOT, d)));

  it('every non-retryable failure names a type from ErrorType, never a string literal', () => {
    const offenders: string[] = [];
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/(?<!ApplicationFailure\.)nonRetryable\(\s*(['"`])/g)) {
        offenders.push(`${path.relative(ROOT, file)}: nonRetryable(${m[1]}…`);
      }
      for (const m of text.matchAll(/ApplicationFailure\.nonRetryable\([^)]*?,\s*(['"`][A-Za-z]+['"`])\s*[,)]/gs)) {
        offenders.push(`${path.relative(ROOT, file)}: ApplicationFailure.nonRetryable(…, ${m[1]})`);
      }
      for (const m of text.matchAll(/nonRetryableErrorTypes:\s*\[([^\]]*)\]/g)) {
        if (/['"`]/.test(m[1]!)) offenders.push(`${path.relative(ROOT, file)}: nonRetryableErrorTypes [${m[1]}]`);
      }
    }
    expect(offenders).toEqual([]);
  });

  it('every ErrorType is used somewhere', () => {
    const text = files.map((f) => readFileSync(f, 'utf8')).join('\n');
    const unused = Object.keys(ErrorType).filter((t) => !new RegExp(`ErrorType\\.${t}\\b`).test(text));
    expect(unused).toEqual([]);
  });
});
