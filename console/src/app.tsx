/** The shell: the log's description, the reviewer's policy and token, the navigation and the views. */
import { useEffect, useState } from 'preact/hooks';
import { LogClient, type LogInfo } from '@vigil/client';
import { forgetToken, storedPolicy, storedToken, type LoadedPolicy } from './settings.js';
import { Setup } from './views/setup.js';
import { Sessions } from './views/sessions.js';
import { TranscriptView } from './views/transcript.js';
import { RecordView } from './views/record.js';
import { Witnesses } from './views/witnesses.js';
import { Bundles } from './views/bundles.js';
import { Perspectives } from './views/perspectives.js';
import { messageOf, Problem } from './ui.js';

/** What every view needs: a client for the log (with the token when one was entered) and the policy. */
export interface Ctx {
  client: LogClient;
  info: LogInfo;
  policy: LoadedPolicy;
  hasToken: boolean;
}

/** The API base: the directory above /console/ (the log's own prefix, or `vigil console`'s root). */
function apiBase(): string {
  return new URL('../', location.href).href;
}

function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

export function App() {
  const [info, setInfo] = useState<LogInfo | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [policy, setPolicy] = useState<LoadedPolicy | undefined>();
  const [token, setToken] = useState<string | undefined>();
  const hash = useHash();

  useEffect(() => {
    new LogClient(apiBase()).logInfo().then(
      (i) => {
        setInfo(i);
        setPolicy(storedPolicy(i.origin));
        setToken(storedToken(i.origin));
      },
      (err: unknown) => setError(`the log's /v1/log did not answer: ${messageOf(err)}`),
    );
  }, []);

  if (error !== undefined) return <Problem>{error}</Problem>;
  if (info === undefined) return <p class="loading">Asking the log to describe itself…</p>;
  const route = (hash.split('?')[0] ?? '').replace(/^#\/?/, '').split('/');
  const settings = route[0] === 'settings' || policy === undefined;
  const client = new LogClient(apiBase(), token !== undefined ? { readerToken: token } : {});
  const ctx: Ctx | undefined =
    policy !== undefined ? { client, info, policy, hasToken: token !== undefined } : undefined;

  let view;
  if (settings || ctx === undefined)
    view = (
      <Setup
        info={info}
        policy={policy}
        hasToken={token !== undefined}
        onPolicy={setPolicy}
        onToken={setToken}
      />
    );
  else if (route[0] === 'session' && route[1] !== undefined)
    view = <TranscriptView ctx={ctx} session={decodeURIComponent(route[1])} />;
  else if (route[0] === 'record' && route[1] !== undefined) view = <RecordView ctx={ctx} index={route[1]} />;
  else if (route[0] === 'witnesses') view = <Witnesses ctx={ctx} />;
  else if (route[0] === 'perspectives') view = <Perspectives ctx={ctx} />;
  else if (route[0] === 'bundles')
    view = (
      <Bundles ctx={ctx} {...(route[1] !== undefined ? { session: decodeURIComponent(route[1]) } : {})} />
    );
  else view = <Sessions ctx={ctx} />;

  const tab = (href: string, label: string, on: boolean) => (
    <a href={href} class={on ? 'tab on' : 'tab'}>
      {label}
    </a>
  );
  return (
    <div class="shell">
      <header>
        <h1>Vigil</h1>
        <span class="origin" title="the log's origin (checkpoint name)">
          {info.origin}
        </span>
        <nav>
          {tab('#/', 'Sessions', !settings && (route[0] === '' || route[0] === 'session'))}
          {tab('#/perspectives', 'Perspectives', route[0] === 'perspectives')}
          {tab('#/witnesses', 'Witnesses', route[0] === 'witnesses')}
          {tab('#/bundles', 'Evidence bundles', route[0] === 'bundles')}
          {tab('#/settings', 'Policy & token', settings)}
        </nav>
        <span class={token !== undefined ? 'token on' : 'token'}>
          {token !== undefined ? 'reader token set' : 'no reader token'}
          {token !== undefined && (
            <button
              type="button"
              class="link"
              onClick={() => {
                forgetToken(info.origin);
                setToken(undefined);
              }}
            >
              forget
            </button>
          )}
        </span>
      </header>
      <main>{view}</main>
    </div>
  );
}
