// @ts-check
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';

const nodeBuiltins = ['fs', 'path', 'os', 'child_process', 'crypto', 'stream', 'http', 'https', 'net', 'zlib', 'util'];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.tttnn/**', 'coverage/**', '**/*.js', '**/*.mjs'] },
  eslint.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
    },
  },
  {
    // Workflow code is replayed deterministically in a sandbox: no I/O, no Node builtins, no heavy libraries.
    files: ['workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.flatMap((m) => [m, `node:${m}`]),
          patterns: [
            {
              group: [
                '@aws-sdk/*',
                '@tensorflow/*',
                'apache-arrow',
                '@dsnp/*',
                'hnswlib-node',
                'usearch',
                '../infra/*',
              ],
            },
            { group: ['../core/*', '../activities/*'], allowTypeImports: true },
          ],
        },
      ],
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/unbound-method': 'off',
    },
  },
);
