/**
 * Bench-only stage timer for the DHCP hot path. Off unless the environment
 * names a file: BOOTRELAY_DHCP_TIMING=/path/timing.json (bench/dhcp.ts sets
 * it). Each stage keeps its durations (ms) in a fixed ring; summary() gives
 * n / p50 / p99 / max / mean per stage and writeTo() saves it as JSON, with
 * the event loop's own delay (perf_hooks, 1 ms resolution) as `loop-delay`:
 * what any datagram waits before its handler can run, whatever blocks the loop
 * (from the first datagram on).
 * When off, the service holds no timer and pays one `if` per stage.
 */
import { writeFileSync } from 'node:fs';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

export const TIMING_ENV = 'BOOTRELAY_DHCP_TIMING';

const RING = 1 << 17;

export interface StageSummary {
  n: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

export class StageTimer {
  private stages = new Map<string, { ring: Float64Array; n: number; sum: number; max: number }>();
  private loop: IntervalHistogram;

  constructor() {
    this.loop = monitorEventLoopDelay({ resolution: 1 });
    this.loop.enable();
  }

  /** now() in ms (monotonic, sub-µs). */
  static now(): number {
    return performance.now();
  }

  add(stage: string, ms: number): void {
    if (this.stages.size === 0) this.loop.reset(); // the loop's delay from the first datagram on
    let s = this.stages.get(stage);
    if (!s) {
      s = { ring: new Float64Array(RING), n: 0, sum: 0, max: 0 };
      this.stages.set(stage, s);
    }
    s.ring[s.n % RING] = ms;
    s.n++;
    s.sum += ms;
    if (ms > s.max) s.max = ms;
  }

  summary(): Record<string, StageSummary> {
    const out: Record<string, StageSummary> = {};
    for (const [name, s] of this.stages) {
      const xs = Array.from(s.ring.subarray(0, Math.min(s.n, RING))).sort((a, b) => a - b);
      const q = (p: number) => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;
      out[name] = { n: s.n, p50: q(0.5), p99: q(0.99), max: s.max, mean: s.sum / s.n };
    }
    const h = this.loop;
    if (h.count > 0) out['loop-delay'] = { n: h.count, p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6, mean: h.mean / 1e6 };
    return out;
  }

  writeTo(file: string): void {
    writeFileSync(file, JSON.stringify(this.summary()) + '\n');
  }
}

/** The timer the environment asks for, or undefined (the normal case). */
export function timerFromEnv(env: NodeJS.ProcessEnv = process.env): { timer: StageTimer; file: string } | undefined {
  const file = env[TIMING_ENV];
  return file ? { timer: new StageTimer(), file } : undefined;
}
