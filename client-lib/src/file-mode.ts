// The one file-mode rule for the services' secrets and data directories (vigil-server's log.key,
// vigil-witness's witness.key), so both refuse and warn alike. Node-only (node:fs); not part of the
// pure core.
import { chmod, stat } from 'node:fs/promises';

/** A key file or data directory that others can write: the service must not start. */
export class FileModeError extends Error {
  readonly code = 'FILE_MODE_UNSAFE';
}

const GROUP_OTHER_WRITE = 0o022;
const GROUP_OTHER_ANY = 0o077;

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(3, '0');
}

/**
 * Checks a secret key file before it is read. Writable by group or others: throws FileModeError
 * (anyone could have replaced the key; changing the mode now cannot restore trust in it). Readable
 * (or executable) by group or others: the mode is changed to 0600 and `warn` gets one loud line
 * saying so, since the key may have been read; if the mode cannot be changed, throws FileModeError.
 * Requires the file to exist (stat errors are thrown as they are).
 */
export async function checkKeyFileMode(
  path: string,
  what: string,
  warn: (line: string) => void,
): Promise<void> {
  const mode = (await stat(path)).mode;
  if ((mode & GROUP_OTHER_WRITE) !== 0) {
    throw new FileModeError(
      `${what} ${path} has mode ${octal(mode)}: others can write it, so anyone may have replaced it; ` +
        `refusing to start. Check the key, then: chmod 600 ${path}`,
    );
  }
  if ((mode & GROUP_OTHER_ANY) === 0) return;
  try {
    await chmod(path, 0o600);
  } catch (err) {
    throw new FileModeError(
      `${what} ${path} has mode ${octal(mode)}: others can read it, and changing it to 600 failed ` +
        `(${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); refusing to start. Make it 600`,
    );
  }
  warn(
    `WARNING: ${what} ${path} had mode ${octal(mode)}: others could read it. Its mode is now 600. ` +
      'If anyone else could have read it, treat the key as exposed and replace it.',
  );
}

/**
 * Checks a data directory (which holds the key and the store): writable by group or others throws
 * FileModeError, since others could plant or swap the files in it. Requires the directory to exist.
 */
export async function checkDataDirMode(path: string): Promise<void> {
  const s = await stat(path);
  if (!s.isDirectory()) throw new FileModeError(`data directory ${path} is not a directory`);
  if ((s.mode & GROUP_OTHER_WRITE) !== 0) {
    throw new FileModeError(
      `data directory ${path} has mode ${octal(s.mode)}: others can write it, so anyone may have ` +
        `replaced the files in it; refusing to start. Check its contents, then: chmod go-w ${path}`,
    );
  }
}
