/** Prometheus text metrics, written by hand. */
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const SIZE_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384];

class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;
  readonly buckets: number[];
  constructor(buckets: number[]) {
    this.buckets = buckets;
    this.counts = buckets.map(() => 0);
  }
  observe(v: number): void {
    this.sum += v;
    this.count++;
    this.buckets.forEach((b, i) => {
      if (v <= b) this.counts[i]!++;
    });
  }
  render(name: string, help: string): string {
    const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`];
    this.buckets.forEach((b, i) => lines.push(`${name}_bucket{le="${b}"} ${this.counts[i]}`));
    lines.push(
      `${name}_bucket{le="+Inf"} ${this.count}`,
      `${name}_sum ${this.sum}`,
      `${name}_count ${this.count}`,
    );
    return lines.join('\n');
  }
}

export class Metrics {
  entries = 0;
  commitSeconds = new Histogram(BUCKETS);
  batchSizes = new Histogram(SIZE_BUCKETS);

  onBatch(m: { entries: number; seconds: number }): void {
    this.entries += m.entries;
    this.commitSeconds.observe(m.seconds);
    this.batchSizes.observe(m.entries);
  }

  render(g: { treeSize: bigint; queueDepth: number; witnessLag: Map<string, bigint> }): string {
    const out = [
      '# HELP vigil_entries_sequenced_total Entries sequenced by this process.',
      '# TYPE vigil_entries_sequenced_total counter',
      `vigil_entries_sequenced_total ${this.entries}`,
      '# HELP vigil_tree_size Size of the newest signed checkpoint.',
      '# TYPE vigil_tree_size gauge',
      `vigil_tree_size ${g.treeSize}`,
      '# HELP vigil_queue_depth Entries waiting for the sequencer.',
      '# TYPE vigil_queue_depth gauge',
      `vigil_queue_depth ${g.queueDepth}`,
      this.batchSizes.render('vigil_batch_entries', 'Entries per sequencer commit.'),
      this.commitSeconds.render('vigil_commit_seconds', 'Sequencer batch latency (take to commit).'),
      '# HELP vigil_witness_lag_entries Tree size minus the newest size each witness cosigned.',
      '# TYPE vigil_witness_lag_entries gauge',
    ];
    for (const [name, lag] of g.witnessLag)
      out.push(`vigil_witness_lag_entries{witness=${JSON.stringify(name)}} ${lag}`);
    return `${out.join('\n')}\n`;
  }
}
