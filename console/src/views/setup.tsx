/**
 * Policy and reader token. The policy is the reviewer's trust anchor: pasted or loaded from a file,
 * never taken from the log (the log's own key list is shown only to compare). The token is entered
 * into a password field, kept for this tab only, and never shown again.
 */
import { useState } from 'preact/hooks';
import type { LogInfo } from '@vigil/client';
import { forgetPolicy, savePolicy, saveToken, type LoadedPolicy } from '../settings.js';
import { messageOf, Problem, Section } from '../ui.js';

export function Setup(props: {
  info: LogInfo;
  policy: LoadedPolicy | undefined;
  hasToken: boolean;
  onPolicy: (p: LoadedPolicy | undefined) => void;
  onToken: (t: string | undefined) => void;
}) {
  const { info, policy } = props;
  const [text, setText] = useState(policy?.text ?? '');
  const [error, setError] = useState<string | undefined>();
  const [token, setTokenText] = useState('');
  const [saved, setSaved] = useState<string | undefined>();

  const loadFile = async (e: Event) => {
    const file = (e.currentTarget as HTMLInputElement).files?.[0];
    if (file === undefined) return;
    if (file.size > 64 * 1024) return setError('a policy file is a few lines; this one is over 64 KiB');
    setText(await file.text());
  };
  const usePolicy = (e: Event) => {
    e.preventDefault();
    try {
      const p = savePolicy(info.origin, text);
      setError(undefined);
      props.onPolicy(p);
      setSaved('policy saved in this browser for this log');
    } catch (err) {
      setError(messageOf(err));
    }
  };
  const useToken = (e: Event) => {
    e.preventDefault();
    if (!/^[\x21-\x7e]+$/.test(token)) return setError('the reader token has spaces or non-ASCII characters');
    saveToken(info.origin, token);
    setTokenText('');
    setError(undefined);
    props.onToken(token);
    setSaved('reader token kept for this tab');
  };
  const keyMismatch =
    policy !== undefined && !policy.policy.logs.some((l) => l.vkey === info.vkey)
      ? `your policy does not name the key this log says it signs with (${info.vkey}): every record will fail to verify unless the log's key is the one in your policy`
      : undefined;

  return (
    <div class="setup">
      <Section title="Policy">
        <p>
          Every receipt, checkpoint and cosignature is checked in this browser against a tlog-policy you
          trust: paste it or load the file (<code>vigil policy --log URL</code> prints one; compare its keys
          with copies from the operator and each witness before you pin it). It is kept in this browser's
          local storage for <strong>{info.origin}</strong>.
        </p>
        <form onSubmit={usePolicy}>
          <textarea
            name="policy"
            rows={8}
            spellcheck={false}
            value={text}
            onInput={(e) => setText((e.currentTarget as HTMLTextAreaElement).value)}
            placeholder={'log <vkey> [url]\nwitness <name> <vkey> [url]\nquorum none'}
          />
          <div class="row">
            <input type="file" name="policy-file" accept=".txt,.policy,text/plain" onChange={loadFile} />
            <button type="submit" name="use-policy">
              Use this policy
            </button>
            {policy !== undefined && (
              <button
                type="button"
                onClick={() => {
                  forgetPolicy(info.origin);
                  props.onPolicy(undefined);
                  setText('');
                }}
              >
                Forget policy
              </button>
            )}
          </div>
        </form>
        {policy !== undefined && (
          <p class="ok-note">
            Policy in use: {policy.policy.logs.length} log key(s), {policy.policy.witnesses.length}{' '}
            witness(es), quorum {policy.policy.quorum}.
          </p>
        )}
        {keyMismatch !== undefined && <Problem>{keyMismatch}</Problem>}
      </Section>
      <Section title="Reader token">
        <p>
          Search and opened values need a reader token of this log (<code>vigil_rt_…</code>). It is kept for
          this tab only (session storage), sent only to this log, and never shown again.
          {props.hasToken ? ' A token is set.' : ''}
        </p>
        <form onSubmit={useToken} class="row">
          <input
            type="password"
            name="reader-token"
            autocomplete="off"
            value={token}
            onInput={(e) => setTokenText((e.currentTarget as HTMLInputElement).value)}
            placeholder="vigil_rt_…"
          />
          <button type="submit" name="use-token">
            Use token
          </button>
        </form>
      </Section>
      {error !== undefined && <Problem>{error}</Problem>}
      {saved !== undefined && error === undefined && <p class="ok-note">{saved}</p>}
      {policy !== undefined && (
        <p>
          <a href="#/">Go to the sessions →</a>
        </p>
      )}
    </div>
  );
}
