/**
 * Two perspectives of the same sessions side by side (`vigil reconcile` in pictures): e.g. the
 * client's `auditTransport` and the server-side wrapper. Both sides' records are verified here; the
 * comparison is @vigil/client's `reconcile` over the opened messages, and every request it finds
 * missing or different is marked on both columns.
 */
import { useState } from 'preact/hooks';
import {
  buildTranscript,
  fetchVerifiedRecords,
  openRecord,
  parseTimeBound,
  reconcile,
  type JsonObject,
  type OpenedRecord,
  type ReconcileReport,
  type SearchQuery,
  type TranscriptItem,
} from '@vigil/client';
import type { Ctx } from '../app.js';
import { Json, Mark, messageOf, Problem } from '../ui.js';

interface Side {
  emitter: string;
  records: OpenedRecord[];
  failed: number;
}

/** What reconcile compares: the record with its JSON-RPC message opened (the rest as logged). */
function forReconcile(r: OpenedRecord): JsonObject {
  return (
    r.record['message'] === undefined ? r.record : { ...r.record, message: r.opened['message'] }
  ) as JsonObject;
}

function idOf(item: TranscriptItem): string | undefined {
  const m = item.request?.message;
  const id = typeof m === 'object' && m !== null ? (m as Record<string, unknown>)['id'] : undefined;
  return typeof id === 'string' || typeof id === 'number' ? `${typeof id}:${String(id)}` : undefined;
}

function Column({ side, session, flagged }: { side: Side; session: string; flagged: Map<string, string> }) {
  const t = buildTranscript(session, side.records);
  return (
    <div class="perspective">
      <h3>
        {side.emitter} <span class="session-id">{session}</span>
      </h3>
      <ol class="items">
        {t.items
          .filter((i) => i.type === 'call')
          .map((item, n) => {
            const problem = flagged.get(`${item.method ?? ''}\u0000${idOf(item) ?? ''}`);
            return (
              <li
                key={n}
                class={problem !== undefined ? 'item call bad' : 'item call'}
                data-finding={problem ?? ''}
              >
                <div class="item-head">
                  <span class="method">{item.method}</span>
                  {item.tool !== undefined && <span class="tool">{item.tool}</span>}
                  <Mark failure={item.request?.failure ?? item.response?.failure} />
                  {problem !== undefined && <strong class="failed-text">{problem}</strong>}
                </div>
                {(item.request?.message as Record<string, unknown> | undefined)?.['params'] !== undefined && (
                  <Json value={(item.request!.message as Record<string, unknown>)['params']} max={1500} />
                )}
              </li>
            );
          })}
      </ol>
    </div>
  );
}

export function Perspectives({ ctx }: { ctx: Ctx }) {
  const names = ctx.info.emitters.map((e) => e.name);
  const [form, setForm] = useState({ a: names[0] ?? '', b: names[1] ?? '', since: '', until: '' });
  const [result, setResult] = useState<{ a: Side; b: Side; report: ReconcileReport } | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);

  const compare = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    setBusy(true);
    try {
      const now = new Date();
      const query: SearchQuery = {};
      if (form.since !== '') query.since = parseTimeBound(form.since, now, 'since').toISOString();
      if (form.until !== '') query.until = parseTimeBound(form.until, now, 'until').toISOString();
      const side = async (emitter: string): Promise<Side> => {
        const { records, answer } = await fetchVerifiedRecords(
          ctx.client,
          ctx.policy.policy,
          { ...query, emitter },
          ctx.hasToken,
        );
        const opened = records.map((r) => openRecord(r, answer));
        const failed = opened.filter(
          (r) =>
            r.failure !== undefined || r.sealed.some((v) => v.state === 'failed' || v.state === 'missing'),
        ).length;
        return { emitter, records: opened, failed };
      };
      const a = await side(form.a);
      const b = await side(form.b);
      setResult({ a, b, report: reconcile(a.records.map(forReconcile), b.records.map(forReconcile)) });
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };

  const field = (k: 'a' | 'b' | 'since' | 'until', label: string) => (
    <label>
      {label}
      <input
        name={`perspective-${k}`}
        list={k === 'a' || k === 'b' ? 'emitter-names' : undefined}
        value={form[k]}
        onInput={(ev) => setForm({ ...form, [k]: (ev.currentTarget as HTMLInputElement).value })}
      />
    </label>
  );
  /** The findings of one column's session, by (method, JSON-RPC id with its type). */
  const flaggedFor = (which: 'a' | 'b', session: string): Map<string, string> => {
    const m = new Map<string, string>();
    for (const f of result?.report.findings ?? [])
      if ((which === 'a' ? f.sessionA : f.sessionB) === session)
        m.set(`${f.method}\u0000${typeof f.id}:${String(f.id)}`, f.problem);
    return m;
  };
  return (
    <div class="perspectives">
      <form class="filters" onSubmit={compare}>
        <datalist id="emitter-names">
          {names.map((n) => (
            <option key={n} value={n} />
          ))}
        </datalist>
        {field('a', 'Perspective A (emitter)')}
        {field('b', 'Perspective B (emitter)')}
        {field('since', 'Since')}
        {field('until', 'Until')}
        <button type="submit" name="compare" disabled={busy}>
          {busy ? 'Comparing…' : 'Compare'}
        </button>
      </form>
      {error !== undefined && <Problem>{error}</Problem>}
      {result !== undefined && (
        <>
          {(result.a.failed > 0 || result.b.failed > 0) && (
            <Problem>
              {result.a.failed + result.b.failed} record(s) FAILED verification or opening: the comparison
              rests on records the log has not proven.
            </Problem>
          )}
          <p class="summary" data-findings={result.report.findings.length}>
            Compared {result.report.requestsCompared} request(s) in {result.report.sessions.length} paired
            session(s):{' '}
            {result.report.findings.length === 0 ? (
              <span class="ok-text">both sides agree.</span>
            ) : (
              <strong class="failed-text">{result.report.findings.length} difference(s).</strong>
            )}
          </p>
          {result.report.findings.length > 0 && (
            <table class="list findings">
              <thead>
                <tr>
                  <th>Problem</th>
                  <th>Request</th>
                  <th>Method</th>
                  <th>Session A</th>
                  <th>Session B</th>
                </tr>
              </thead>
              <tbody>
                {result.report.findings.map((f, i) => (
                  <tr key={i} class="bad">
                    <td>{f.problem}</td>
                    <td>
                      {f.requester}:{JSON.stringify(f.id)}
                    </td>
                    <td>
                      {f.method} {f.tool ?? ''}
                    </td>
                    <td>{f.sessionA ?? '–'}</td>
                    <td>{f.sessionB ?? '–'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {result.report.sessions.map((p) => (
            <div class="compare" key={`${p.a}\u0000${p.b}`}>
              <Column side={result.a} session={p.a} flagged={flaggedFor('a', p.a)} />
              <Column side={result.b} session={p.b} flagged={flaggedFor('b', p.b)} />
            </div>
          ))}
        </>
      )}
    </div>
  );
}
