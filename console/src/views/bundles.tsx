/**
 * Evidence bundles (DESIGN.md "Evidence bundles"): download one for a session or a time window, built
 * here from the log with @vigil/client's buildBundle (every proof checked before it is written), and
 * load a bundle file to check offline with verifyBundle against the policy you loaded. A bundle that
 * does not verify is shown with every problem, never hidden.
 */
import { useState } from 'preact/hooks';
import {
  buildBundle,
  formatBundle,
  parseBundle,
  parseTimeBound,
  verifyBundle,
  type BundleReport,
  type BundleSelection,
} from '@vigil/client';
import type { Ctx } from '../app.js';
import { EntryLink, Mark, messageOf, Problem, Section, Time } from '../ui.js';

/** Saves `text` as a file through a blob URL (no server round trip; allowed under the CSP). */
function download(name: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function Bundles({ ctx, session }: { ctx: Ctx; session?: string }) {
  const [sel, setSel] = useState({ session: session ?? '', since: '', until: '' });
  const [busy, setBusy] = useState(false);
  const [made, setMade] = useState<string | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [report, setReport] = useState<{ name: string; report?: BundleReport; failure?: string }>();

  const exportBundle = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    setMade(undefined);
    setBusy(true);
    try {
      const now = new Date();
      const selection: BundleSelection = {};
      if (sel.session !== '') selection.session = sel.session;
      if (sel.since !== '') selection.since = parseTimeBound(sel.since, now, 'since');
      if (sel.until !== '') selection.until = parseTimeBound(sel.until, now, 'until');
      const b = await buildBundle(ctx.client, ctx.policy.policy, ctx.policy.text, selection);
      const name = `vigil-evidence-${(sel.session || now.toISOString()).replace(/[^A-Za-z0-9._-]/g, '_')}.json`;
      download(name, formatBundle(b));
      setMade(`${name}: ${b.entries.length} entries, every proof to one checkpoint`);
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };

  const loadBundle = async (e: Event) => {
    const file = (e.currentTarget as HTMLInputElement).files?.[0];
    if (file === undefined) return;
    try {
      const b = parseBundle(await file.text());
      setReport({
        name: file.name,
        report: verifyBundle(b, ctx.policy.policy, { policyText: ctx.policy.text }),
      });
    } catch (err) {
      setReport({ name: file.name, failure: messageOf(err) });
    }
  };

  const r = report?.report;
  return (
    <div class="bundles">
      <Section title="Download an evidence bundle">
        <p>
          One JSON file with the policy, a checkpoint that satisfies it, every selected entry with its
          inclusion proof, the registry records that give each emitter's key and (with your reader token) the
          sealed values: anyone can check it offline with <code>vigil bundle verify</code> or here.
        </p>
        <form class="filters" onSubmit={exportBundle}>
          {(['session', 'since', 'until'] as const).map((k) => (
            <label key={k}>
              {k === 'session' ? 'Session' : k === 'since' ? 'Since' : 'Until'}
              <input
                name={`bundle-${k}`}
                value={sel[k]}
                placeholder={k === 'session' ? 'session id' : '10m, 7d or RFC 3339'}
                onInput={(ev) => setSel({ ...sel, [k]: (ev.currentTarget as HTMLInputElement).value })}
              />
            </label>
          ))}
          <button type="submit" name="export" disabled={busy}>
            {busy ? 'Building…' : 'Download bundle'}
          </button>
        </form>
        {made !== undefined && <p class="ok-note">{made}</p>}
        {error !== undefined && <Problem>{error}</Problem>}
      </Section>
      <Section title="Check a bundle file">
        <p>Checked in this browser against your policy; a bundle exported under another policy is refused.</p>
        <input type="file" name="bundle-file" accept=".json,application/json" onChange={loadBundle} />
        {report !== undefined && (
          <div class="bundle-report" data-ok={r?.ok === true ? 'true' : 'false'}>
            <h3>
              {report.name}:{' '}
              <Mark
                failure={
                  report.failure ?? (r !== undefined && !r.ok ? `${r.problems.length} problem(s)` : undefined)
                }
              />
            </h3>
            {r !== undefined && (
              <>
                <p>
                  Checkpoint of <code>{r.origin}</code> at size {r.size.toString()}, cosigned by{' '}
                  {r.cosigners.length > 0 ? r.cosigners.join(', ') : 'no witness'}; {r.records.length}{' '}
                  entries.
                </p>
                {r.problems.length > 0 && (
                  <ul class="problems">
                    {r.problems.map((p, i) => (
                      <li key={i} class="problem">
                        <code>{p.code}</code>{' '}
                        {p.index !== undefined && <EntryLink index={p.index.toString()} />} {p.message}
                      </li>
                    ))}
                  </ul>
                )}
                {r.notes.length > 0 && (
                  <ul class="notes">
                    {r.notes.map((p, i) => (
                      <li key={i} class="note">
                        <code>{p.code}</code> {p.message}
                      </li>
                    ))}
                  </ul>
                )}
                <table class="list">
                  <thead>
                    <tr>
                      <th>Entry</th>
                      <th>Emitter</th>
                      <th>Received</th>
                      <th>Kind</th>
                      <th>Method / tool</th>
                      <th>Checked</th>
                    </tr>
                  </thead>
                  <tbody>
                    {r.records.map((rec) => (
                      <tr key={rec.index.toString()} class={rec.failure !== undefined ? 'bad' : ''}>
                        <td class="num">{rec.index.toString()}</td>
                        <td>{rec.emitter}</td>
                        <td>
                          <Time value={rec.received} />
                        </td>
                        <td>{String(rec.record['kind'] ?? '')}</td>
                        <td>
                          {[rec.record['mcp.method.name'], rec.record['gen_ai.tool.name']]
                            .filter((x) => typeof x === 'string' && x !== '')
                            .join(' ')}
                        </td>
                        <td>
                          <Mark failure={rec.failure} />
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </>
            )}
          </div>
        )}
      </Section>
    </div>
  );
}
