// Lint without type information: fast enough to run in every `npm test`; tsc -b does the type check.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'data/**', '.tap/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'off',
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  // The log and the witness share their store through @vigil/store and never import each other.
  {
    files: ['server/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['@vigil/witness', '@vigil/witness/*', '**/witness/src/**'],
              message:
                'server never imports the witness; shared code belongs in @vigil/store or @vigil/client',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['witness/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['@vigil/server', '@vigil/server/*', '**/server/src/**'],
              message:
                'the witness never imports the server; shared code belongs in @vigil/store or @vigil/client',
            },
          ],
        },
      ],
    },
  },
);
