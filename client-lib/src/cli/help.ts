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
                    [--tool T] [--since T] [--until T] [--limit N] [--after I] [--json]
                    [--reader-token T] [--open | --no-open]

Searches the log (needs a reader token), verifies every result's receipt against the policy, and
opens and checks its sealed values.
`,
  evidence: `usage: vigil evidence verify <file> (--policy FILE | --log-key VKEY)

Checks a witness's evidence of log misbehaviour (fork, inconsistent, rollback) offline.
`,
  audit: `usage: vigil audit --log URL --policy FILE [--state DIR] [--follow] [--json] [--emitters FILE]
                   [--operator-key VKEY] [--fail-on-unclosed] [--max-skew 5m] [--interval 10s]
                   [--reader-token T]

Downloads the whole log through tiles and checks the tree, checkpoints, emitter signatures and streams.
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
