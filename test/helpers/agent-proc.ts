/** Test helper: the bundled agent (test/helpers/bundle.ts) run in a namespace, and relayctl against it. */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { onJsonLines } from './jsonl';
import { waitFor, type NetLab } from './netns';

/**
 * Spawns `node agentJs --config configFile` in `ns`, pushes its JSON log lines into `lines`
 * (a line that is not JSON as `{ raw }` when `keepRaw`), and waits (15 s) for "bootrelay started";
 * throws with the agent's stderr when it exits first.
 */
export async function startAgent(lab: NetLab, ns: string, agentJs: string, configFile: string, lines: Array<Record<string, unknown>>, keepRaw = false): Promise<ChildProcess> {
  const agent = lab.spawn(ns, process.execPath, [agentJs, '--config', configFile]);
  let err = '';
  onJsonLines(agent.stdout!, (obj, raw) => {
    if (obj) lines.push(obj);
    else if (keepRaw) lines.push({ raw });
  });
  agent.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  await waitFor(() => {
    if (agent.exitCode !== null) throw new Error(`agent exited ${agent.exitCode}: ${err}`);
    return lines.some((l) => l.msg === 'bootrelay started');
  }, 15_000, 'agent started');
  return agent;
}

/** relayctl (bundled at ctlJs) against the control socket `sock`, synchronously (15 s at most). */
export function relayctl(ctlJs: string, sock: string): (...args: string[]) => { code: number | null; stdout: string; stderr: string } {
  return (...args) => {
    const r = spawnSync(process.execPath, [ctlJs, '--socket', sock, ...args], { encoding: 'utf8', timeout: 15_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
}
