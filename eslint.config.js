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
  // The web console runs in the browser and renders attacker-controlled content: text only, never markup.
  {
    files: ['console/src/**/*.{ts,tsx}'],
    languageOptions: { globals: { ...globals.browser } },
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: "JSXAttribute[name.name='dangerouslySetInnerHTML']",
          message: 'the console renders record content as text, never as markup',
        },
        {
          selector: 'MemberExpression[property.name=/^(innerHTML|outerHTML)$/]',
          message: 'the console renders record content as text, never as markup',
        },
        {
          selector: "CallExpression[callee.property.name='insertAdjacentHTML']",
          message: 'the console renders record content as text, never as markup',
        },
      ],
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
