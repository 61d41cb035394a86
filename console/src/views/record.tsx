/**
 * One record: the entry as the log sent it, its receipt (tlog-proof@v1) and the verdict on it, and
 * every commitment (sha256, size) with the opened value and its state. A value whose S does not match
 * its commitment is shown as FAILED, never as the value.
 */
import { useEffect, useState } from 'preact/hooks';
import { fetchVerifiedEntry, openRecord, type OpenedRecord } from '@vigil/client';
import type { Ctx } from '../app.js';
import { Json, Mark, messageOf, Problem, Section } from '../ui.js';

export function RecordView({ ctx, index }: { ctx: Ctx; index: string }) {
  const [record, setRecord] = useState<OpenedRecord | undefined>();
  const [error, setError] = useState<string | undefined>();

  useEffect(() => {
    let live = true;
    setRecord(undefined);
    if (!/^(0|[1-9][0-9]{0,19})$/.test(index)) {
      setError(`${index} is not an entry index`);
      return;
    }
    fetchVerifiedEntry(ctx.client, ctx.policy.policy, BigInt(index), ctx.hasToken).then(
      ({ record, answer }) => live && setRecord(openRecord(record, answer)),
      (err: unknown) => live && setError(messageOf(err)),
    );
    return () => {
      live = false;
    };
  }, [index, ctx.client, ctx.policy]);

  if (error !== undefined) return <Problem>{error}</Problem>;
  if (record === undefined) return <p class="loading">Fetching and verifying entry {index}…</p>;
  const session = typeof record.record['session'] === 'string' ? record.record['session'] : undefined;
  return (
    <div class="record">
      <h2>
        Entry {index} <Mark failure={record.failure} />
      </h2>
      <p>
        Emitter <span class="emitter">{record.emitter}</span>, received by the log at {record.received}
        {session !== undefined && (
          <>
            {' '}
            · session <a href={`#/session/${encodeURIComponent(session)}`}>{session}</a>
          </>
        )}
      </p>
      <Section title="Commitments and opened values">
        {record.sealed.length === 0 ? (
          <p>This record has no sealed values.</p>
        ) : (
          <table class="list commitments">
            <thead>
              <tr>
                <th>Path</th>
                <th>sha256</th>
                <th>Size</th>
                <th>State</th>
                <th>Value</th>
              </tr>
            </thead>
            <tbody>
              {record.sealed.map((v) => (
                <tr key={v.path} class={v.state === 'failed' || v.state === 'missing' ? 'bad' : ''}>
                  <td>
                    <code>{v.path}</code>
                  </td>
                  <td>
                    <code class="hash">{v.sha256}</code>
                  </td>
                  <td class="num">{v.size}</td>
                  <td>
                    <span class={`state ${v.state}`} data-state={v.state}>
                      {v.state === 'opened'
                        ? '✓ opened, matches'
                        : v.state === 'erased'
                          ? `erased by entry ${v.erasure ?? '?'}`
                          : v.state === 'sealed'
                            ? '[sealed] (no reader token)'
                            : `✗ ${v.state.toUpperCase()}${v.error !== undefined ? `: ${v.error}` : ''}`}
                    </span>
                  </td>
                  <td>{v.state === 'opened' ? <Json value={v.value} max={4000} /> : '–'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>
      <Section title="Receipt (tlog-proof@v1)">
        {record.failure !== undefined && (
          <Problem>Receipt FAILED against your policy: {record.failure}</Problem>
        )}
        <pre class="receipt">{record.receipt ?? ''}</pre>
      </Section>
      <Section title="Entry as logged">
        <Json value={record.entry ?? record.record} />
      </Section>
    </div>
  );
}
