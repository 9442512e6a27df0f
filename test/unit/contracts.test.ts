import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
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
  const names = ['Jurisdiction', 'StudyId', 'DatasetId', 'RequestId', 'RequestKind', 'RequestState', 'RequestDeadline'];

  it('the dev server registers each one with its type', () => {
    expect(Object.values(SEARCH_ATTRIBUTES).map((k) => [k.name, k.type])).toEqual([
      ['Jurisdiction', 'KEYWORD'],
      ['StudyId', 'KEYWORD'],
      ['DatasetId', 'KEYWORD'],
      ['RequestId', 'KEYWORD'],
      ['RequestKind', 'KEYWORD'],
      ['RequestState', 'KEYWORD'],
      ['RequestDeadline', 'DATETIME'],
    ]);
    expect(searchAttributeFlags()).toEqual([
      '--search-attribute',
      'Jurisdiction=Keyword',
      '--search-attribute',
      'StudyId=Keyword',
      '--search-attribute',
      'DatasetId=Keyword',
      '--search-attribute',
      'RequestId=Keyword',
      '--search-attribute',
      'RequestKind=Keyword',
      '--search-attribute',
      'RequestState=Keyword',
      '--search-attribute',
      'RequestDeadline=Datetime',
    ]);
  });

  it('docker-compose registers exactly the same ones', () => {
    const compose = readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8');
    const registered = [...compose.matchAll(/--search-attribute=([A-Za-z]+)=(Keyword|Datetime)/g)].map((m) => m[1]);
    expect(registered).toEqual(names);
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

  it('every ErrorType is the type of a failure some source file raises', () => {
    const raised = new Map<string, string[]>();
    for (const file of files) {
      for (const type of raisedErrorTypes(readFileSync(file, 'utf8'))) {
        raised.set(type, [...(raised.get(type) ?? []), path.relative(ROOT, file)]);
      }
    }
    expect(Object.keys(ErrorType)).toEqual([
      'PackageRejected',
      'ConsentImportRejected',
      'KeyUnavailable',
      'AccessDenied',
      'JurisdictionViolation',
      'DatasetNotFound',
      'VaultEntryMissing',
      'InvalidInput',
      'AuditChainConflict',
      'KeyInUse',
      'RetentionConflict',
      'MessageRefused',
      'PreprocessFailed',
      'StorageDenied',
      'RequestConflict',
      'DeviationOpen',
    ]);
    expect(Object.keys(ErrorType).filter((t) => !raised.has(t))).toEqual([]);
  });

  it('finds a raised type only where a failure is made, not in a retry list, a comparison or an import', () => {
    const source = `
      import { ErrorType, nonRetryable } from '../contracts';
      const retry = { nonRetryableErrorTypes: [ErrorType.KeyInUse] };
      if (root.type === ErrorType.AccessDenied) exit(6);
      throw nonRetryable(ErrorType.InvalidInput, 'bad');
      const type = busy ? ErrorType.RetentionConflict : ErrorType.DatasetNotFound;
      throw nonRetryable(type, 'refused');
      throw ApplicationFailure.nonRetryable('gone', ErrorType.KeyUnavailable);
      throw ApplicationFailure.create({ type: ErrorType.StorageDenied, message: 'no' });
    `;
    expect(raisedErrorTypes(source).sort()).toEqual([
      'DatasetNotFound',
      'InvalidInput',
      'KeyUnavailable',
      'RetentionConflict',
      'StorageDenied',
    ]);
  });
});

/**
 * The `ErrorType` members a source file gives as the type of a failure it makes: the first argument of
 * `nonRetryable(type, …)`, the second of `ApplicationFailure.nonRetryable|retryable(message, type)`, or the `type` of
 * `ApplicationFailure.create({ type })`. An argument that is a local constant counts with its initializer (a
 * conditional choosing between types).
 */
function raisedErrorTypes(text: string): string[] {
  const file = ts.createSourceFile('source.ts', text, ts.ScriptTarget.Latest, true);
  const initializers = new Map<string, ts.Expression[]>();
  const typeArguments: ts.Expression[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isVariableDeclaration(node) && ts.isIdentifier(node.name) && node.initializer) {
      initializers.set(node.name.text, [...(initializers.get(node.name.text) ?? []), node.initializer]);
    }
    if (ts.isCallExpression(node)) {
      const callee = node.expression;
      if (ts.isIdentifier(callee) && callee.text === 'nonRetryable' && node.arguments[0]) {
        typeArguments.push(node.arguments[0]);
      }
      if (
        ts.isPropertyAccessExpression(callee) &&
        ts.isIdentifier(callee.expression) &&
        callee.expression.text === 'ApplicationFailure'
      ) {
        const method = callee.name.text;
        if ((method === 'nonRetryable' || method === 'retryable') && node.arguments[1]) {
          typeArguments.push(node.arguments[1]);
        }
        const options = node.arguments[0];
        if (method === 'create' && options && ts.isObjectLiteralExpression(options)) {
          for (const property of options.properties) {
            if (ts.isPropertyAssignment(property) && property.name.getText(file) === 'type') {
              typeArguments.push(property.initializer);
            }
          }
        }
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  const found = new Set<string>();
  const collect = (node: ts.Node, seen: Set<string>): void => {
    if (
      ts.isPropertyAccessExpression(node) &&
      ts.isIdentifier(node.expression) &&
      node.expression.text === 'ErrorType'
    ) {
      found.add(node.name.text);
      return;
    }
    if (ts.isIdentifier(node) && !seen.has(node.text)) {
      seen.add(node.text);
      for (const initializer of initializers.get(node.text) ?? []) collect(initializer, seen);
      return;
    }
    ts.forEachChild(node, (child) => collect(child, seen));
  };
  for (const argument of typeArguments) collect(argument, new Set());
  return [...found];
}
