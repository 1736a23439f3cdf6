/**
 * A tiny Prometheus-text registry: counters and gauges with labels.
 * Every dropped packet, refused path and transfer is counted here and
 * shown on /metrics.
 */
type Labels = Record<string, string | number>;

interface Family {
  help: string;
  type: 'counter' | 'gauge';
  values: Map<string, { labels: Labels; value: number }>;
}

function key(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}

function escapeLabel(v: string | number): string {
  return String(v).replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

export class Metrics {
  private families = new Map<string, Family>();
  private collectors: Array<() => void> = [];

  private family(name: string, type: Family['type'], help: string): Family {
    let f = this.families.get(name);
    if (!f) {
      f = { help, type, values: new Map() };
      this.families.set(name, f);
    }
    return f;
  }

  /** Declares a metric so it shows (as 0) before the first increment. */
  declare(name: string, type: Family['type'], help: string): void {
    this.family(name, type, help);
  }

  inc(name: string, labels: Labels = {}, by = 1, help = name): void {
    const f = this.family(name, 'counter', help);
    const k = key(labels);
    const v = f.values.get(k);
    if (v) v.value += by;
    else f.values.set(k, { labels, value: by });
  }

  set(name: string, value: number, labels: Labels = {}, help = name): void {
    const f = this.family(name, 'gauge', help);
    f.values.set(key(labels), { labels, value });
  }

  get(name: string, labels: Labels = {}): number {
    return this.families.get(name)?.values.get(key(labels))?.value ?? 0;
  }

  /** Sum over all label sets of a metric. */
  total(name: string): number {
    let t = 0;
    for (const v of this.families.get(name)?.values.values() ?? []) t += v.value;
    return t;
  }

  /** Called before each render, to refresh gauges. */
  onCollect(fn: () => void): void {
    this.collectors.push(fn);
  }

  render(): string {
    for (const c of this.collectors) c();
    const out: string[] = [];
    for (const [name, f] of this.families) {
      out.push(`# HELP ${name} ${f.help}`, `# TYPE ${name} ${f.type}`);
      if (f.values.size === 0) out.push(`${name} 0`);
      for (const { labels, value } of f.values.values()) {
        const ls = Object.entries(labels)
          .map(([k, v]) => `${k}="${escapeLabel(v)}"`)
          .join(',');
        out.push(ls ? `${name}{${ls}} ${value}` : `${name} ${value}`);
      }
    }
    return out.join('\n') + '\n';
  }
}
