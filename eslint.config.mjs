import js from '@eslint/js';
import importPlugin from 'eslint-plugin-import';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.steward/**', 'coverage/**', 'bin/**', '.prof/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.mts'],
    languageOptions: {
      parserOptions: { project: ['./tsconfig.test.json'], tsconfigRootDir: import.meta.dirname },
    },
    plugins: { import: importPlugin },
    settings: { 'import/resolver': { node: { extensions: ['.ts', '.js', '.json'] } } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'import/no-cycle': 'error',
      'no-console': 'error',
    },
  },
  {
    // Workflows are started by name; clients may import workflow functions as types only, for typed starts.
    files: ['**/*.ts'],
    ignores: ['workflows/**'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '(^|/)workflows(/|$)',
              allowTypeImports: true,
              message: 'import contracts from contracts/, and workflow functions only as types',
            },
          ],
        },
      ],
    },
  },
  {
    // Workflow code is replayed deterministically: no Node built-ins, no side-effecting activity code.
    files: ['workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [...builtinModules, ...builtinModules.map((m) => `node:${m}`)].map((name) => ({
            name,
            message: 'workflows must stay deterministic: no Node built-ins',
          })),
          patterns: [
            {
              // Pure modules that run inside workflows too: the permission check, resolving a pipeline's parameters,
              // comparing a run with its re-run, minting certificate ids, the storage layout, subject-request deadlines.
              regex:
                '^\\.\\./(activities|lib)/(?!auth/roles$|preprocess/pipeline$|preprocess/compare$|erasure/ids$|storage/layout$|subject-rights/deadlines$|subject-rights/places$)',
              allowTypeImports: true,
              message: 'workflows may import activities and lib only as types',
            },
          ],
        },
      ],
    },
  },
);
