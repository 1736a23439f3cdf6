// Preload (node -r) for measuring a program's event-loop delay from outside its code:
// LOOP_DELAY_OUT=/path.json LOOP_DELAY_MS=60000 node -r bench/_lib/loop-delay.cjs dist/bootrelay.js ...
// After LOOP_DELAY_MS (default 60 s) writes {p50, p99, p999, max, mean, n} in ms (perf_hooks
// monitorEventLoopDelay, 1 ms resolution), `over10`: the share of samples delayed more than
// 10 ms, and `busyMs`: the event loop's active time over the window (eventLoopUtilization), to
// LOOP_DELAY_OUT, once. The program runs on.
'use strict';
const { monitorEventLoopDelay, performance } = require('node:perf_hooks');
const { writeFileSync } = require('node:fs');

const out = process.env.LOOP_DELAY_OUT;
if (out) {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const elu0 = performance.eventLoopUtilization();
  const ms = (ns) => Math.round(ns / 1e4) / 100;
  setTimeout(() => {
    h.disable();
    const elu = performance.eventLoopUtilization(elu0);
    let over10 = 0;
    for (const [pct, v] of h.percentiles) if (v > 10e6) { over10 = 100 - pct; break; }
    const r = {
      p50: ms(h.percentile(50)),
      p99: ms(h.percentile(99)),
      p999: ms(h.percentile(99.9)),
      max: ms(h.max),
      mean: ms(h.mean),
      n: h.count,
      over10Pct: Math.round(over10 * 1000) / 1000,
      busyMs: Math.round(elu.active),
      utilization: Math.round(elu.utilization * 10000) / 10000,
    };
    writeFileSync(out, JSON.stringify(r) + '\n');
  }, Number(process.env.LOOP_DELAY_MS ?? 60000)).unref();
}
