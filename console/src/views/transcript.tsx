/**
 * A session's transcript (`vigil transcript` in the browser): each request beside its response, the
 * arguments and results opened and checked against their commitments, a verified or FAILED mark on
 * every record, and for each tools/call the tool definition in effect, with changed tools flagged.
 */
import { useEffect, useState } from 'preact/hooks';
import { fetchTranscript, type Transcript, type TranscriptItem, type TranscriptSide } from '@vigil/client';
import type { Ctx } from '../app.js';
import { EntryLink, Json, Mark, messageOf, Problem, Time } from '../ui.js';

export function TranscriptView({ ctx, session }: { ctx: Ctx; session: string }) {
  const [transcript, setTranscript] = useState<Transcript | undefined>();
  const [count, setCount] = useState(0);
  const [error, setError] = useState<string | undefined>();

  useEffect(() => {
    let live = true;
    setTranscript(undefined);
    fetchTranscript(ctx.client, ctx.policy.policy, session, ctx.hasToken).then(
      ({ records, transcript }) => {
        if (!live) return;
        setCount(records);
        setTranscript(transcript);
      },
      (err: unknown) => live && setError(messageOf(err)),
    );
    return () => {
      live = false;
    };
  }, [session, ctx.client, ctx.policy]);

  if (error !== undefined) return <Problem>{error}</Problem>;
  if (transcript === undefined) return <p class="loading">Fetching and verifying the session…</p>;
  const changed = new Set(transcript.toolChanges.map((c) => c.tool));
  return (
    <div class="transcript">
      <h2>
        Session <span class="session-id">{session}</span>
      </h2>
      <p class="summary">
        {count} record(s) in log order, {transcript.items.length} item(s).{' '}
        {transcript.failed > 0 ? (
          <strong class="failed-text">
            {transcript.failed} record(s) FAILED verification or opening (marked below).
          </strong>
        ) : (
          <span class="ok-text">Every record verified against your policy.</span>
        )}
      </p>
      <p>
        <a class="bundle-link" href={`#/bundles/${encodeURIComponent(session)}`}>
          Evidence bundle of this session →
        </a>
      </p>
      {count === 0 && <Problem>No records of this session (or the token cannot search).</Problem>}
      {transcript.toolChanges.length > 0 && (
        <div class="warning" role="alert">
          <strong>Tool definitions changed during this session:</strong>
          <ul>
            {transcript.toolChanges.map((c) => (
              <li key={`${c.tool}${c.toIndex}`}>
                <code>{c.tool}</code>: {c.fields.join(', ')} changed between <EntryLink index={c.fromIndex} />{' '}
                and <EntryLink index={c.toIndex} />
              </li>
            ))}
          </ul>
        </div>
      )}
      <ol class="items">
        {transcript.items.map((item, i) => (
          <Item key={i} item={item} changed={changed} />
        ))}
      </ol>
    </div>
  );
}

function SideView({ label, side, part }: { label: string; side: TranscriptSide; part: 'params' | 'result' }) {
  const m = side.message as Record<string, unknown> | undefined;
  const body = m?.[part] ?? m?.['error'];
  return (
    <div class={side.failure !== undefined ? 'side bad' : 'side'} data-side={label}>
      <div class="side-head">
        <strong>{label}</strong> <EntryLink index={side.index} /> by{' '}
        <span class="emitter">{side.emitter}</span> · log <Time value={side.received} /> · emitter{' '}
        <Time value={side.time} /> <Mark failure={side.failure} />
      </div>
      {part === 'params' && side.principal !== undefined && (
        <div class="body" data-part="principal">
          <span class="part">principal</span>
          <Json value={side.principal} />
        </div>
      )}
      {body !== undefined && (
        <div class="body" data-part={m !== undefined && part in m ? part : 'error'}>
          <span class="part">{m !== undefined && part in m ? part : 'error'}</span>
          <Json value={body} />
        </div>
      )}
      {side.notOpened.length > 0 && (
        <ul class="not-opened">
          {side.notOpened.map((n) => (
            <li key={n}>{n}</li>
          ))}
        </ul>
      )}
    </div>
  );
}

function Item({ item, changed }: { item: TranscriptItem; changed: Set<string> }) {
  if (item.type === 'call') {
    const d = item.definitions;
    return (
      <li class="item call" data-method={item.method ?? ''} data-tool={item.tool ?? ''}>
        <div class="item-head">
          <span class="dir">
            {item.direction === 'server_to_client' ? 'server → client' : 'client → server'}
          </span>{' '}
          <span class="method">{item.method}</span>
          {item.tool !== undefined && <span class="tool">{item.tool}</span>}
          {item.latencyMs !== undefined && <span class="latency">{item.latencyMs} ms</span>}
        </div>
        <SideView label="request" side={item.request!} part="params" />
        {item.response !== undefined ? (
          <SideView label="response" side={item.response} part="result" />
        ) : (
          <p class="note">no response in the log</p>
        )}
        {item.method === 'tools/call' && (
          <details class="definition">
            <summary>
              Tool definition in effect:{' '}
              {d === undefined ? (
                'none (no tools/list earlier in the session)'
              ) : (
                <>
                  tools/list result at <EntryLink index={d.index} />
                  {d.sealed ? ' [sealed]' : d.definition === undefined ? ' NOT LISTED' : ''}
                </>
              )}
            </summary>
            {d?.definition !== undefined && <Json value={d.definition} />}
          </details>
        )}
        {item.tool !== undefined && changed.has(item.tool) && (
          <p class="warning">WARNING: the definition of {item.tool} changed during this session.</p>
        )}
        {(item.toolChanges ?? []).map((c) => (
          <p class="warning" key={c.tool}>
            WARNING: tool {c.tool} changed ({c.fields.join(', ')}) between entries {c.fromIndex} and{' '}
            {c.toIndex}
          </p>
        ))}
      </li>
    );
  }
  const r = item.record!;
  const body =
    r.message ?? (r.fields !== undefined && Object.keys(r.fields).length > 0 ? r.fields : undefined);
  return (
    <li class={`item lone ${item.type}`}>
      <div class="item-head">
        <span class="kind">{item.type}</span> <span class="method">{item.method ?? item.kind}</span>
        {item.tool !== undefined && <span class="tool">{item.tool}</span>}
      </div>
      <div class={r.failure !== undefined ? 'side bad' : 'side'}>
        <div class="side-head">
          <EntryLink index={r.index} /> by <span class="emitter">{r.emitter}</span> · log{' '}
          <Time value={r.received} /> · emitter <Time value={r.time} /> <Mark failure={r.failure} />
        </div>
        {body !== undefined && <Json value={body} max={4000} />}
        {r.notOpened.length > 0 && (
          <ul class="not-opened">
            {r.notOpened.map((n) => (
              <li key={n}>{n}</li>
            ))}
          </ul>
        )}
      </div>
    </li>
  );
}
