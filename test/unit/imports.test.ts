import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.join(__dirname, '..', '..');

/**
 * The layers under everything else. `schemas/` is the bottom: zod, its own files and the jurisdiction files only, so any
 * part of Steward can validate a boundary without pulling in Temporal, storage or crypto. `contracts/` sits above it
 * (schema types are its messages' types) and under everything that shares it: never activities/, workflows/, workers/
 * or cli/.
 */
const RULES: Record<string, (specifier: string) => boolean> = {
  schemas: (s) => s === 'zod' || /^\.\/[\w-]+$/.test(s) || s === '../jurisdictions',
  contracts: (s) => !/^\.\.\/(activities|workflows|workers|cli)(\/|$)/.test(s),
};

/** Every module a source file names: `import … from`, `export … from`, side-effect imports and `import('…')`. */
function importedModules(text: string): string[] {
  const specifiers = [
    ...text.matchAll(
      /^\s*(?:import|export)\s+(?:type\s+)?(?:\{[^}]*\}|\*(?:\s+as\s+\w+)?|\w+(?:\s*,\s*\{[^}]*\})?)\s*from\s*['"]([^'"]+)['"]/gm,
    ),
    ...text.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm),
    ...text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g),
  ];
  return specifiers.map((m) => m[1]!);
}

function offenders(folder: string): string[] {
  const allowed = RULES[folder]!;
  const dir = path.join(ROOT, folder);
  return readdirSync(dir)
    .filter((name) => name.endsWith('.ts'))
    .flatMap((name) =>
      importedModules(readFileSync(path.join(dir, name), 'utf8'))
        .filter((specifier) => !allowed(specifier))
        .map((specifier) => `${folder}/${name} imports ${specifier}`),
    );
}

describe('import layers', () => {
  it('schemas/ imports only zod, itself and the jurisdiction files: nothing from lib/ or contracts/', () => {
    expect(offenders('schemas')).toEqual([]);
  });

  it('contracts/ imports nothing from activities/, workflows/, workers/ or cli/', () => {
    expect(offenders('contracts')).toEqual([]);
  });

  it('reads every kind of import line', () => {
    const text = [
      "import { z } from 'zod';",
      "import type { Action } from '../lib/auth/roles';",
      'import {',
      '  ErrorType,',
      '  nonRetryable,',
      "} from '../contracts';",
      "export { ActionSchema } from '../lib/auth/roles';",
      "import * as layout from '../lib/storage/layout';",
      "import '../lib/side-effect';",
      "export type Stamp = Pick<Message, 'from' | 'issuedAt'>;",
      "type T = import('../lib/storage/s3').S3;",
    ].join('\n');
    expect(importedModules(text).sort()).toEqual([
      '../contracts',
      '../lib/auth/roles',
      '../lib/auth/roles',
      '../lib/side-effect',
      '../lib/storage/layout',
      '../lib/storage/s3',
      'zod',
    ]);
  });
});
