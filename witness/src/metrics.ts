// The witness's Prometheus counters (GET /metrics, text format 0.0.4), written by hand as the log's are.
// Counters count events of this process since it started; gauges are read from the store at scrape.

/** A label value escaped for the text format (backslash, double quote, newline). */
function label(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

class LabelledCounter {
  readonly #values = new Map<string, number>();
  readonly #labels: readonly string[];
  constructor(labels: readonly string[]) {
    this.#labels = labels;
  }
  inc(...values: string[]): void {
    const key = JSON.stringify(values);
    this.#values.set(key, (this.#values.get(key) ?? 0) + 1);
  }
  get(...values: string[]): number {
    return this.#values.get(JSON.stringify(values)) ?? 0;
  }
  render(name: string, help: string): string[] {
    const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} counter`];
    for (const [key, n] of this.#values) {
      const values = JSON.parse(key) as string[];
      const labels = this.#labels.map((l, i) => `${l}="${label(values[i]!)}"`).join(',');
      lines.push(`${name}{${labels}} ${n}`);
    }
    return lines;
  }
}

export class WitnessMetrics {
  /** add-checkpoint answers by HTTP status (200, 400, 403, 404, 409, 422, ...). */
  readonly addCheckpoint = new LabelledCounter(['code']);
  readonly cosignatures = new LabelledCounter(['origin']);
  /** Pull polls by outcome: ok or failure. */
  readonly pullPolls = new LabelledCounter(['origin', 'result']);
  readonly evidence = new LabelledCounter(['origin', 'kind']);

  render(gauges: {
    logs: { origin: string; size: bigint; disabled: boolean }[];
    evidenceItems: number;
  }): string {
    const out = [
      ...this.addCheckpoint.render(
        'vigil_witness_add_checkpoint_total',
        'add-checkpoint requests answered, by HTTP status code.',
      ),
      ...this.cosignatures.render(
        'vigil_witness_cosignatures_total',
        'Checkpoints cosigned and stored, by log.',
      ),
      ...this.pullPolls.render(
        'vigil_witness_pull_polls_total',
        'Pull-mode polls of a log, by result (ok or failure).',
      ),
      ...this.evidence.render(
        'vigil_witness_evidence_stored_total',
        'Evidence of log misbehaviour stored by this process, by log and kind.',
      ),
      '# HELP vigil_witness_evidence_items Evidence items in the store (any is conclusive or suspicious).',
      '# TYPE vigil_witness_evidence_items gauge',
      `vigil_witness_evidence_items ${gauges.evidenceItems}`,
      '# HELP vigil_witness_cosigned_size Size of the newest checkpoint cosigned, by log.',
      '# TYPE vigil_witness_cosigned_size gauge',
      ...gauges.logs.map((l) => `vigil_witness_cosigned_size{origin="${label(l.origin)}"} ${l.size}`),
      '# HELP vigil_witness_log_enabled 1 for a log this witness cosigns, 0 for a disabled one.',
      '# TYPE vigil_witness_log_enabled gauge',
      ...gauges.logs.map(
        (l) => `vigil_witness_log_enabled{origin="${label(l.origin)}"} ${l.disabled ? 0 : 1}`,
      ),
    ];
    return `${out.join('\n')}\n`;
  }
}
