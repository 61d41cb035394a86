/**
 * Sessions in a time window (DESIGN.md "Forensic review": `vigil sessions` in the browser). Every
 * record behind a row had its receipt verified here; a row resting on a record that failed says so.
 */
import { useEffect, useState } from 'preact/hooks';
import {
  fetchVerifiedRecords,
  parseTimeBound,
  summarizeSessions,
  type ReviewClock,
  type SearchQuery,
  type SessionSummary,
} from '@vigil/client';
import type { Ctx } from '../app.js';
import { messageOf, Problem, Time } from '../ui.js';

interface Filters {
  since: string;
  until: string;
  clock: ReviewClock;
  emitter: string;
  tool: string;
}

/** Filters live in the hash's query so a view can be linked and reloaded. */
function filtersFromHash(): Filters {
  const q = new URLSearchParams(location.hash.split('?')[1] ?? '');
  return {
    since: q.get('since') ?? '',
    until: q.get('until') ?? '',
    clock: q.get('clock') === 'emitter' ? 'emitter' : 'received',
    emitter: q.get('emitter') ?? '',
    tool: q.get('tool') ?? '',
  };
}

export function Sessions({ ctx }: { ctx: Ctx }) {
  const [filters, setFilters] = useState<Filters>(filtersFromHash);
  const [applied, setApplied] = useState<Filters>(filters);
  const [sessions, setSessions] = useState<SessionSummary[] | undefined>();
  const [records, setRecords] = useState(0);
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    let live = true;
    setBusy(true);
    setError(undefined);
    (async () => {
      const now = new Date();
      const since = applied.since !== '' ? parseTimeBound(applied.since, now, 'since') : undefined;
      const until = applied.until !== '' ? parseTimeBound(applied.until, now, 'until') : undefined;
      // The log filters on its own clock; on the emitter's clock every record is fetched and filtered here.
      const query: SearchQuery = {};
      if (applied.emitter !== '') query.emitter = applied.emitter;
      if (applied.clock === 'received') {
        if (since !== undefined) query.since = since.toISOString();
        if (until !== undefined) query.until = until.toISOString();
      }
      const { records } = await fetchVerifiedRecords(ctx.client, ctx.policy.policy, query, false);
      const all = summarizeSessions(records, {
        clock: applied.clock,
        ...(since !== undefined ? { since } : {}),
        ...(until !== undefined ? { until } : {}),
        ...(applied.emitter !== '' ? { emitter: applied.emitter } : {}),
      });
      if (!live) return;
      setRecords(records.length);
      setSessions(applied.tool === '' ? all : all.filter((s) => s.tools.includes(applied.tool)));
    })().then(
      () => live && setBusy(false),
      (err: unknown) => {
        if (!live) return;
        setBusy(false);
        setError(messageOf(err));
      },
    );
    return () => {
      live = false;
    };
  }, [applied, ctx.client, ctx.policy]);

  const field = (name: keyof Filters, label: string, placeholder: string) => (
    <label>
      {label}
      <input
        name={name}
        value={filters[name]}
        placeholder={placeholder}
        onInput={(e) => setFilters({ ...filters, [name]: (e.currentTarget as HTMLInputElement).value })}
      />
    </label>
  );
  const apply = (e: Event) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filters))
      if (v !== '' && !(k === 'clock' && v === 'received')) q.set(k, v);
    history.replaceState(null, '', `#/${q.size > 0 ? `?${q.toString()}` : ''}`);
    setApplied({ ...filters });
  };
  const failed = sessions?.reduce((n, s) => n + s.failed, 0) ?? 0;
  const clockName =
    applied.clock === 'received' ? "the log's clock (received)" : "the emitter's clock (time)";

  return (
    <div class="sessions">
      <form class="filters" onSubmit={apply}>
        {field('since', 'Since', '10m, 7d or RFC 3339')}
        {field('until', 'Until', 'now')}
        <label>
          Clock
          <select
            name="clock"
            value={filters.clock}
            onChange={(e) =>
              setFilters({ ...filters, clock: (e.currentTarget as HTMLSelectElement).value as ReviewClock })
            }
          >
            <option value="received">log (received)</option>
            <option value="emitter">emitter (time)</option>
          </select>
        </label>
        {field('emitter', 'Emitter', 'any')}
        {field('tool', 'Tool', 'any')}
        <button type="submit" name="apply">
          Show
        </button>
      </form>
      {!ctx.hasToken && (
        <Problem>
          Search needs a reader token: enter one under <a href="#/settings">Policy &amp; token</a>.
        </Problem>
      )}
      {error !== undefined && <Problem>{error}</Problem>}
      {busy && <p class="loading">Fetching and verifying records…</p>}
      {sessions !== undefined && (
        <>
          <p class="summary">
            {sessions.length} session(s) from {records} record(s), window on {clockName}.{' '}
            {failed > 0 ? (
              <strong class="failed-text">
                {failed} record(s) FAILED verification: the log's answer cannot be trusted.
              </strong>
            ) : (
              <span class="ok-text">Every record's receipt verified against your policy.</span>
            )}
          </p>
          <table class="list" data-testid="sessions">
            <thead>
              <tr>
                <th>Session</th>
                <th>First (log)</th>
                <th>Last (log)</th>
                <th>First (emitter)</th>
                <th>Emitter</th>
                <th>Transport</th>
                <th>Principal</th>
                <th>Records</th>
                <th>Requests</th>
                <th>Errors</th>
                <th>Tools</th>
                <th>Server</th>
                <th>Ended</th>
                <th>Verified</th>
              </tr>
            </thead>
            <tbody>
              {sessions.map((s) => (
                <tr key={s.session} class={s.failed > 0 ? 'bad' : ''}>
                  <td>
                    <a class="session-link" href={`#/session/${encodeURIComponent(s.session)}`}>
                      {s.session}
                    </a>
                  </td>
                  <td>
                    <Time value={s.firstReceived} />
                  </td>
                  <td>
                    <Time value={s.lastReceived} />
                  </td>
                  <td>
                    <Time value={s.firstTime} />
                  </td>
                  <td>{s.emitters.join(', ')}</td>
                  <td>{s.transports.join(', ')}</td>
                  <td>{s.principals.join(', ') || '–'}</td>
                  <td class="num">{s.records}</td>
                  <td class="num">{s.requests}</td>
                  <td class="num">{s.errors}</td>
                  <td class="tools">{s.tools.join(', ') || '–'}</td>
                  <td class="servers">{s.servers.join(', ') || '–'}</td>
                  <td class="ended">{s.ended ?? 'open'}</td>
                  <td>
                    {s.failed === 0 ? (
                      <span class="mark ok" data-mark="verified">
                        ✓ all
                      </span>
                    ) : (
                      <span class="mark failed" data-mark="failed">
                        ✗ FAILED {s.failed}
                      </span>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </div>
  );
}
