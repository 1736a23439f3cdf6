/** Shared by the e2e tests: which agent bundle to boot with, and ordered-step assertions on its events. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { AgentLine } from './lab';
import { distAgent } from '../helpers/repo';

const ROOT = resolve(__dirname, '../..');

/** The agent to boot with: the one inside the built OpenWrt package when there is one (issue 6), else dist/. */
export function agentBundle(work: string): { js: string; from: string } {
  const dist = join(ROOT, 'dist');
  const ipk = existsSync(dist) ? readdirSync(dist).find((f) => /^bootrelay_.*_all\.ipk$/.test(f)) : undefined;
  if (ipk) {
    const x = join(work, 'ipk');
    mkdirSync(x, { recursive: true });
    const run = (cmd: string) => {
      const r = spawnSync('sh', ['-c', cmd], { cwd: x, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
    };
    run(`tar -xzf ${JSON.stringify(join(dist, ipk))} && mkdir -p data && tar -xzf ./data.tar.gz -C data`);
    const js = join(x, 'data', 'usr', 'lib', 'bootrelay', 'bootrelay.js');
    if (existsSync(js)) return { js, from: `package ${ipk}` };
  }
  return { js: distAgent(), from: 'dist/bootrelay.js' };
}

/** Asserts the steps appear in this order in the agent's events; returns the matched events. */
export function expectInOrder(events: AgentLine[], steps: Array<[string, (e: AgentLine) => boolean]>): AgentLine[] {
  const found: AgentLine[] = [];
  let i = 0;
  for (const [name, pred] of steps) {
    while (i < events.length && !pred(events[i]!)) i++;
    if (i >= events.length) {
      const seen = events.map((e) => `${e.type}${e.file ? ' ' + e.file : ''}`).join(', ');
      throw new Error(`step "${name}" not found after ${found.length} earlier steps; events: ${seen}`);
    }
    found.push(events[i]!);
    i++;
  }
  return found;
}

export const is = (type: string, file?: RegExp) => (e: AgentLine) => e.type === type && (!file || file.test(String(e.file ?? '')));
export const isScript = (e: AgentLine) => /^http\.(start|done|script)$/.test(String(e.type)) && /boot\.ipxe/.test(String(e.file ?? e.path ?? ''));

