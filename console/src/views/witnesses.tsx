/**
 * Witnesses and the witnessed checkpoint: the log's newest checkpoint that carries cosignatures,
 * verified here against the policy (log signature, every cosignature of a policy witness, quorum).
 * The log's own list of witnesses is shown beside it, only to compare: it is the log's word.
 */
import { useEffect, useState } from 'preact/hooks';
import { verifyCheckpoint, type VerifiedCheckpoint } from '@vigil/client';
import type { Ctx } from '../app.js';
import { Mark, messageOf, Problem, Section } from '../ui.js';

interface Loaded {
  note: string;
  verified?: VerifiedCheckpoint;
  failure?: string;
}

export function Witnesses({ ctx }: { ctx: Ctx }) {
  const [loaded, setLoaded] = useState<Loaded | undefined>();
  const [error, setError] = useState<string | undefined>();

  useEffect(() => {
    let live = true;
    // A log whose witnesses have not cosigned yet has no witnessed checkpoint: show its own (the
    // policy's quorum then decides whether it verifies).
    ctx.client
      .witnessedCheckpoint()
      .catch(() => ctx.client.checkpoint())
      .then(
        (note) => {
          if (!live) return;
          try {
            setLoaded({ note, verified: verifyCheckpoint(note, ctx.policy.policy) });
          } catch (err) {
            setLoaded({ note, failure: messageOf(err) });
          }
        },
        (err: unknown) => live && setError(messageOf(err)),
      );
    return () => {
      live = false;
    };
  }, [ctx.client, ctx.policy]);

  const policy = ctx.policy.policy;
  return (
    <div class="witnesses">
      <Section title="Witnessed checkpoint">
        {error !== undefined && <Problem>{error}</Problem>}
        {loaded === undefined && error === undefined && <p class="loading">Fetching the checkpoint…</p>}
        {loaded !== undefined && (
          <>
            <p>
              <Mark failure={loaded.failure} />
              {loaded.verified !== undefined && (
                <>
                  {' '}
                  origin <code>{loaded.verified.checkpoint.origin}</code>, size{' '}
                  <strong>{loaded.verified.checkpoint.size.toString()}</strong>, quorum{' '}
                  <code>{policy.quorum}</code> met by {loaded.verified.cosigners.size} cosignature(s)
                </>
              )}
            </p>
            <pre class="receipt">{loaded.note}</pre>
          </>
        )}
      </Section>
      <Section title="Witnesses in your policy">
        {policy.witnesses.length === 0 ? (
          <p>Your policy names no witnesses (quorum {policy.quorum}).</p>
        ) : (
          <table class="list">
            <thead>
              <tr>
                <th>Witness</th>
                <th>Key</th>
                <th>Cosigned this checkpoint</th>
              </tr>
            </thead>
            <tbody>
              {policy.witnesses.map((w) => {
                const t = loaded?.verified?.cosigners.get(w.name);
                return (
                  <tr key={w.name}>
                    <td>{w.name}</td>
                    <td>
                      <code class="hash">{w.vkey}</code>
                    </td>
                    <td>
                      {t !== undefined ? (
                        <span class="mark ok">✓ at {new Date(Number(t) * 1000).toISOString()}</span>
                      ) : (
                        <span class="note">no valid cosignature</span>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
      </Section>
      <Section title="Witnesses the log says it has (its word, for comparison)">
        <p>Quorum the log reports: {ctx.info.quorum}</p>
        <ul>
          {ctx.info.witnesses.map((w) => (
            <li key={w.name}>
              {w.name} <code class="hash">{w.vkey}</code>{' '}
              {policy.witnesses.some((p) => p.vkey === w.vkey) ? '(in your policy)' : '(NOT in your policy)'}
            </li>
          ))}
        </ul>
      </Section>
    </div>
  );
}
