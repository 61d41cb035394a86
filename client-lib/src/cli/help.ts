/**
 * `vigil <command> --help` (and `-h`): the usage of one command on stdout, exit 0. Only the arguments
 * before a `--` count (after it come a wrapped server's own arguments, which may be `--help`).
 */
import { CONSOLE_USAGE } from './console.js';
import { BUNDLE_USAGE, EXPORT_USAGE } from './export.js';
import { POLICY_USAGE, SESSIONS_USAGE, TRANSCRIPT_USAGE } from './review.js';

const COMMAND_USAGE: Record<string, string> = {
  keygen: `usage: vigil keygen <name> [--out FILE]

Writes a new signer key (mode 0600, never overwriting a file) and prints only its vkey.
`,
  submit: `usage: vigil submit --log URL --key FILE [--policy FILE] [--spool DIR] [FILE]

Signs and submits JSON-lines records (stdin without FILE); prints one receipt line per record.
`,
  verify: `usage: vigil verify <receipt> --entry FILE --policy FILE [--log URL --reader-token T]
       vigil verify --log URL --index N --policy FILE [--reader-token T]

Verifies a tlog-proof@v1 receipt for the entry bytes against the policy (offline with files; with
--index the entry's exact bytes, GET /v1/entries/<N>?format=raw, and its receipt come from the log and
are checked the same way). With a reader token, the entry's sealed values are opened and checked.
`,
  search: `usage: vigil search --log URL --policy FILE [--emitter N] [--stream S] [--session S] [--method M]
                    [--tool T] [--since 10m|7d|<RFC3339>] [--until ...] [--clock received|emitter]
                    [--limit N] [--after I] [--json] [--reader-token T] [--open | --no-open]

Searches the log (needs a reader token), newest first, verifies every result's receipt against the
policy, and opens and checks its sealed values. One row per record: INDEX, RECEIVED (the log's clock),
TIME (the emitter's), EMITTER, DIRECTION (client->server, server->client), METHOD (or the kind of a
record that is not a message), TOOL (or prompt, or resource), the JSON-RPC ID, a short ARGS/RESULT
summary of the opened value ([sealed] when not opened), and VERIFIED; then every sealed value in full.
--since/--until take a duration back from now (90s, 10m, 2h, 7d) or an RFC 3339 time; --clock chooses
the clock they filter on (default received: the log's; emitter: result pages are read and filtered
here). --json prints the verified results as JSON (unchanged by these columns).
`,
  evidence: `usage: vigil evidence verify <file> (--policy FILE | --log-key VKEY)

Checks a witness's evidence of log misbehaviour (fork, inconsistent, rollback) offline.
`,
  audit: `usage: vigil audit --log URL --policy FILE [--state DIR] [--follow] [--json] [--emitters FILE]
                   [--operator-key VKEY] [--fail-on-unclosed] [--max-skew 5m] [--interval 10s]
                   [--reader-token T]

Downloads the whole log through tiles and checks the tree, checkpoints, emitter signatures and streams.
With a reader token, sealed values are opened and checked, and a tool whose description or input
schema changed between two tools/list results of the same server is a TOOL_DEFINITION_CHANGED warning
naming the session, the tool and both entries (a warning does not change the exit status). Without a
token, sealed tools/list results are not checked, and the report says so.
`,
  policy: POLICY_USAGE,
  sessions: SESSIONS_USAGE,
  transcript: TRANSCRIPT_USAGE,
  console: CONSOLE_USAGE,
  export: EXPORT_USAGE,
  bundle: BUNDLE_USAGE,
};

/** Whether `argv` (a command's arguments) asks for help before any `--`. */
export function wantsHelp(argv: readonly string[]): boolean {
  const dash = argv.indexOf('--');
  const own = dash === -1 ? argv : argv.slice(0, dash);
  return own.includes('--help') || own.includes('-h');
}

/** The usage text of `command`, or undefined when the command prints its own (mcp, reconcile). */
export function commandUsage(command: string): string | undefined {
  return COMMAND_USAGE[command];
}
