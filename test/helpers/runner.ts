/**
 * Test helper: a relay runner child (test/integration/fixtures/*-runner.ts) in a namespace. The
 * child prints one JSON object per line on stdout: `{ready: …}` once, `{ev: …}` per relay event,
 * anything else is a reply to a command written on its stdin.
 */
import type { ChildProcess } from 'node:child_process';
import type { RelayEvent } from '../../proto/events';
import { waitFor, type NetLab } from './netns';

export interface Runner {
  p: ChildProcess;
  events: RelayEvent[];
  replies: Array<Record<string, unknown>>;
  ready: Promise<Record<string, unknown>>;
  /** Writes `cmd` and waits (5 s) for the first reply after it that has `key`; its value. */
  ask(cmd: string, key: string): Promise<unknown>;
}

/** Spawns `node runnerJs configFile` in `ns`; its stderr goes to ours, prefixed `[runner name]`. */
export function spawnRunner(lab: NetLab, ns: string, runnerJs: string, configFile: string, name: string): Runner {
  const p = lab.spawn(ns, process.execPath, [runnerJs, configFile]);
  const events: RelayEvent[] = [];
  const replies: Array<Record<string, unknown>> = [];
  let buf = '';
  let readyResolve!: (v: Record<string, unknown>) => void;
  const ready = new Promise<Record<string, unknown>>((r) => (readyResolve = r));
  p.stderr?.on('data', (d) => process.stderr.write(`[runner ${name}] ${d}`));
  p.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const o = JSON.parse(line) as Record<string, unknown>;
      if (o.ev) events.push(o.ev as RelayEvent);
      else if (o.ready) readyResolve(o);
      else replies.push(o);
    }
  });
  return {
    p,
    events,
    replies,
    ready,
    async ask(cmd, key) {
      const n = replies.length;
      p.stdin?.write(cmd + '\n');
      const r = await waitFor(() => replies.slice(n).find((x) => key in x), 5000, cmd);
      return r[key];
    },
  };
}
