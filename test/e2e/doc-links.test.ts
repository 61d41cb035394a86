// Every file a README or doc names exists: markdown links to relative targets, and backticked paths
// that start at a directory of the repository (or of the README's own workspace). A reader sent to a
// file the project lacks is a bug, like a broken import.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const docs = [
  'README.md',
  ...fs
    .readdirSync(path.join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
  ...['client-lib', 'server', 'witness', 'test', 'migrations']
    .map((ws) => `${ws}/README.md`)
    .filter((f) => fs.existsSync(path.join(root, f))),
];

/** Does `rel` (possibly with one `*` glob segment) exist under `base`? */
function exists(base: string, rel: string): boolean {
  const clean = rel.replace(/\/$/, '');
  if (!clean.includes('*')) return fs.existsSync(path.join(base, clean));
  const dir = path.dirname(clean);
  const pattern = new RegExp(
    `^${path
      .basename(clean)
      .replace(/[.+?^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')}$`,
  );
  return (
    fs.existsSync(path.join(base, dir)) && fs.readdirSync(path.join(base, dir)).some((f) => pattern.test(f))
  );
}

/** The relative link targets and repository-looking backticked paths in a markdown file. */
export function namedPaths(markdown: string): { links: string[]; paths: string[] } {
  const text = markdown.replace(/^```[\s\S]*?^```/gm, '');
  const links = [...text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)]
    .map((m) => m[1]!)
    .filter((l) => !/^[a-z][a-z0-9+.-]*:/i.test(l) && !l.startsWith('#'))
    .map((l) => decodeURIComponent(l.replace(/#.*$/, '')));
  const paths = [...text.matchAll(/`([^`\s]+)`/g)]
    .map((m) => m[1]!)
    .filter((p) => /^[A-Za-z0-9_.*-]+(\/[A-Za-z0-9_.*-]+)+\/?$/.test(p) && !p.startsWith('.'));
  return { links, paths };
}

t.test('the extractor finds links and paths, and skips URLs, anchors and code blocks', async (t) => {
  const found = namedPaths(
    [
      'See [ops](docs/OPERATIONS.md#backup), [site](https://example.com/x), [top](#top).',
      'Run `server/src/main.ts` or `vigil-server serve` with `<data-dir>/log.key`.',
      '```',
      'not/a/checked/path.ts',
      '```',
    ].join('\n'),
  );
  t.same(found, { links: ['docs/OPERATIONS.md'], paths: ['server/src/main.ts'] });
});

for (const doc of docs) {
  t.test(`${doc}: every named file exists`, async (t) => {
    const dir = path.dirname(path.join(root, doc));
    const { links, paths } = namedPaths(fs.readFileSync(path.join(root, doc), 'utf8'));
    for (const link of links) t.ok(exists(dir, link), `link ${link} exists (relative to ${doc})`);
    for (const p of paths) {
      // A path is checked when its first directory is one of the repository's or the doc's own
      // (`server/src/app.ts`, `src/app.ts` in server/README.md); others are examples (`a/b`).
      const first = p.split('/')[0]!;
      const bases = [root, dir].filter((b) => first.includes('*') || fs.existsSync(path.join(b, first)));
      if (bases.length === 0) continue;
      t.ok(
        bases.some((b) => exists(b, p)),
        `${p} exists`,
      );
    }
  });
}
