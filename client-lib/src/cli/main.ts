#!/usr/bin/env node
/**
 * `vigil`: the operator and emitter CLI (DESIGN.md "Client library and CLI"). The only place in
 * client-lib that reads process.env or calls process.exit. Exit codes: 0 ok, 1 a problem was found
 * (verification failed, audit found something), 2 could not run (usage, I/O, network).
 */
import { useNodeCrypto } from '../node.js';
import { runAuditCommand } from './audit.js';
import { runEvidenceCommand, runKeygen, runSearch, runSubmit, runVerify } from './commands.js';
import { runBundleCommand, runExport } from './export.js';
import { commandUsage, wantsHelp } from './help.js';
import { UsageError, type Io } from './io.js';
import { runPolicy, runSessions, runTranscript } from './review.js';

const USAGE = `usage: vigil <command> [options]

commands:
  keygen <name> [--out FILE]                    write a signer key (mode 0600), print its vkey
  submit --log URL --key FILE [--policy FILE] [--spool DIR] [FILE]
                                                sign and submit JSON-lines records (stdin without FILE)
  verify <receipt> --entry FILE --policy FILE [--log URL --reader-token T]
                                                verify a tlog-proof@v1 receipt offline; with a reader
                                                token, open and check the entry's sealed values
  verify --log URL --index N --policy FILE [--reader-token T]
                                                fetch entry N's bytes and receipt, verify both
  search --log URL --policy FILE [--emitter N] [--stream S] [--session S] [--method M] [--tool T]
         [--since T] [--until T] [--limit N] [--json] [--reader-token T] [--open | --no-open]
                                                search the log (needs a reader token), verify every
                                                result, open and check its sealed values
  evidence verify <file> (--policy FILE | --log-key VKEY)   check witness evidence offline
  audit --log URL --policy FILE [--state DIR] [--follow] [--json] [--emitters FILE]
        [--operator-key VKEY] [--fail-on-unclosed] [--max-skew 5m] [--interval 10s]
        [--reader-token T]                      audit the whole log (with a reader token, open and
                                                check every sealed value)

  policy --log URL [--out FILE]                 print a tlog-policy for a log (trust on first use)
  sessions --log URL --policy FILE [--since 10m|7d|T] [--until T] [--clock received|emitter]
           [--emitter E] [--json]               sessions in a time window, every record verified
  transcript <session> --log URL --policy FILE [--json]
                                                a session's requests and responses, opened and
                                                checked, with the tool definitions in effect
  console --log URL [--host H] [--port P]       serve the web console from this machine, forwarding
                                                its reads to the log (every proof checked in the browser)
  export (--session ID | --since T [--until T] [--clock received|emitter]) --log URL --policy FILE
         --out FILE [--reader-token T] [--no-open]
                                                write an evidence bundle: entries, proofs to one
                                                checkpoint, registry records, sealed values
  bundle verify FILE [--policy FILE] [--json]   check an evidence bundle offline
  mcp ...                                       MCP capture (vigil mcp --help)
  reconcile ...                                 compare client- and server-side captures

A reader token can also come from VIGIL_READER_TOKEN (not visible in the process list).
Every command prints its own usage with --help.
`;

async function main(argv: string[]): Promise<number> {
  useNodeCrypto();
  const io: Io = {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    color: process.stdout.isTTY === true && process.env.NO_COLOR === undefined,
    progress: process.stderr.isTTY === true,
  };
  const [command, ...rest] = argv;
  try {
    // `export --follow --help` is the streams-out command's own usage (printed by it).
    const followHelp = command === 'export' && rest.includes('--follow');
    if (command !== undefined && !followHelp && wantsHelp(rest)) {
      const usage =
        command === 'mcp' ? ((await import('./mcp.js')) as { USAGE: string }).USAGE : commandUsage(command);
      if (usage !== undefined) {
        io.stdout.write(usage);
        return 0;
      }
    }
    switch (command) {
      case 'keygen':
        return await runKeygen(rest, io);
      case 'submit':
        return await runSubmit(rest, io);
      case 'verify':
        return await runVerify(rest, io);
      case 'search':
        return await runSearch(rest, io);
      case 'evidence':
        return await runEvidenceCommand(rest, io);
      case 'audit':
        return await runAuditCommand(rest, io);
      case 'policy':
        return await runPolicy(rest, io);
      case 'sessions':
        return await runSessions(rest, io);
      case 'transcript':
        return await runTranscript(rest, io);
      case 'console': {
        const m = await import('./console.js');
        return await m.runConsole(rest, io);
      }
      case 'export':
        return await runExport(rest, io);
      case 'bundle':
        return await runBundleCommand(rest, io);
      case 'mcp': {
        const m = (await import('./mcp.js')) as {
          runMcpCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number>;
        };
        return await m.runMcpCommand(rest, process.env);
      }
      case 'reconcile': {
        const m = (await import('./reconcile.js')) as {
          runReconcileCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number>;
        };
        return await m.runReconcileCommand(rest, process.env);
      }
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        io.stdout.write(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`vigil: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    io.stderr.write(`vigil: ${(err as Error).message}\n`);
    return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`vigil: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(2);
  },
);
