/**
 * Small pieces shared by the views. Everything a record carries is attacker-controlled: it is only
 * ever passed to Preact as text children or attribute values (escaped), never as markup.
 */
import type { ComponentChildren } from 'preact';

/** The verification mark of one record: `verified`, or FAILED with the reason beside it. */
export function Mark({ failure }: { failure?: string | undefined }) {
  return failure === undefined ? (
    <span class="mark ok" data-mark="verified" title="receipt verified against your policy">
      ✓ verified
    </span>
  ) : (
    <span class="mark failed" data-mark="failed">
      ✗ FAILED <span class="why">{failure}</span>
    </span>
  );
}

/** JSON as indented text (long values cut, with the full length said). */
export function Json({ value, max = 20_000 }: { value: unknown; max?: number }) {
  let text: string;
  try {
    text = JSON.stringify(value, null, 2) ?? 'undefined';
  } catch (err) {
    text = `(not JSON: ${(err as Error).message})`;
  }
  if (text.length > max) text = `${text.slice(0, max)}\n… (${text.length} characters in all)`;
  return <pre class="json">{text}</pre>;
}

export function Section({ title, children }: { title: string; children: ComponentChildren }) {
  return (
    <section>
      <h2>{title}</h2>
      {children}
    </section>
  );
}

export function Problem({ children }: { children: ComponentChildren }) {
  return (
    <p class="problem" role="alert">
      {children}
    </p>
  );
}

/** A link to an entry's record view. */
export function EntryLink({ index }: { index: string }) {
  return (
    <a class="entry-link" href={`#/record/${index}`}>
      entry {index}
    </a>
  );
}

/** A time as logged (ISO), shortened for tables; the full value in the title. */
export function Time({ value }: { value: string }) {
  const short = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?/.exec(value)?.[0]?.replace('T', ' ');
  return <time title={value}>{short ?? value}</time>;
}

/** Where an error message lives on the objects this app catches. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
