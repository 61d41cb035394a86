// Builds the console into dist/: index.html, app.css (copied) and app.js (one esbuild bundle of the
// app, Preact and @vigil/client's browser-safe code). Run after `tsc -b` (which type-checks src/ and
// builds @vigil/client's dist that the bundle imports).
import { copyFile, mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = fileURLToPath(new URL('.', import.meta.url));
await mkdir(`${root}dist`, { recursive: true });
await esbuild.build({
  absWorkingDir: root,
  entryPoints: ['src/main.tsx'],
  outfile: 'dist/app.js',
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  minify: true,
  legalComments: 'eof',
  logLevel: 'warning',
});
await copyFile(`${root}src/index.html`, `${root}dist/index.html`);
await copyFile(`${root}src/app.css`, `${root}dist/app.css`);
