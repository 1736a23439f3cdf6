import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Agent } from '../../../agent/main';
import { loadConfig } from '../../../agent/config/load';
import { silentLogger } from '../../../agent/log';
import { CLIENTS_FILE, readSavedClients } from '../../../agent/clients/store';
import { waitFor } from '../../helpers/netns';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** An Agent whose services are not started: its bus, tracker and state files only. */
function makeAgent(): { agent: Agent; stateDir: string } {
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'br-agent-unit-'));
  dirs.push(dir);
  const stateDir = join(dir, 'state');
  const file = join(dir, 'relay.json');
  fs.writeFileSync(
    file,
    JSON.stringify({
      agentId: 'unit',
      stateDir,
      lan: { interface: 'lo', address: '127.0.0.1', prefix: 8 },
      dhcp: { mode: 'off' },
      tftp: false,
      http: { port: 0 },
      upstream: { url: 'http://127.0.0.1:9/boot/' },
      cache: { dir: join(dir, 'cache') },
      boot: { loaders: { bios: 'ipxe/undionly.kpxe' }, profiles: { debian: { kernel: 'debian/vmlinuz' } } },
      control: { socket: join(dir, 'ctl.sock') },
    }),
  );
  const r = loadConfig(file);
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return { agent: new Agent(r.config, file, silentLogger, { uplink: false }), stateDir };
}

const mac = (i: number) => `52:54:00:77:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;

describe('Agent client-state persistence (stateDir/clients.jsonl)', () => {
  it('does not write client states for every new MAC a DISCOVER flood makes up, but saves them soon', async () => {
    const { agent, stateDir } = makeAgent();
    const file = join(stateDir, CLIENTS_FILE);
    for (let i = 0; i < 300; i++) agent.emit({ type: 'dhcp.discover', mac: mac(i), firmware: 'bios', arch: 'bios' });
    expect(fs.existsSync(file)).toBe(false);
    const saved = await waitFor(() => {
      const s = readSavedClients(stateDir).states as Array<{ mac: string }>;
      return s.length ? s : undefined;
    }, 5000, CLIENTS_FILE);
    expect(saved.length).toBe(300);
    // a real step of a boot is saved at once, as one line for that client
    const before = fs.statSync(file).size;
    agent.emit({ type: 'http.start', mac: mac(1), ip: '127.0.0.1', file: 'debian/vmlinuz', totalBytes: 10 });
    const now = readSavedClients(stateDir).states as Array<{ mac: string; phase: string }>;
    expect(now.find((c) => c.mac === mac(1))?.phase).toBe('kernel');
    expect(now.length).toBe(300);
    expect(fs.statSync(file).size - before).toBeLessThan(2048);
    await agent.stop();
  });
});

describe('Agent reload and the boot plan', () => {
  it('drops a runtime assignment whose profile the reload removed, for the tracker and the saved state alike', async () => {
    const { agent, stateDir } = makeAgent();
    const cfg = JSON.parse(fs.readFileSync(agent.configFile, 'utf8'));
    cfg.boot.profiles.rescue = { kernel: 'rescue/vmlinuz' };
    cfg.boot.defaultProfile = 'debian';
    fs.writeFileSync(agent.configFile, JSON.stringify(cfg));
    await agent.reload();
    agent.plan.assign(mac(7), 'rescue');
    agent.emit({ type: 'dhcp.discover', mac: mac(7), firmware: 'ipxe', arch: 'bios' });
    expect(agent.tracker.get(mac(7))?.profile).toBe('rescue');
    expect(JSON.parse(fs.readFileSync(join(stateDir, 'assign.json'), 'utf8'))).toEqual({ [mac(7)]: 'rescue' });
    delete cfg.boot.profiles.rescue;
    fs.writeFileSync(agent.configFile, JSON.stringify(cfg));
    await agent.reload();
    expect(agent.plan.profileName(mac(7))).toBe('debian');
    expect(agent.tracker.get(mac(7))?.profile).toBe('debian');
    expect(JSON.parse(fs.readFileSync(join(stateDir, 'assign.json'), 'utf8'))).toEqual({});
    await agent.stop();
  });
});

describe('Agent wiring of the tracker', () => {
  it('publishes a failure once, as client.failed after the event that caused it, derived from the state change', async () => {
    const { agent } = makeAgent();
    const seen: string[] = [];
    agent.bus.on('relay', (e) => seen.push(e.type));
    agent.bus.on('client', (u) => seen.push(`client:${u.state.phase}:${u.kind}`));
    agent.emit({ type: 'dhcp.discover', mac: mac(9), firmware: 'ipxe', arch: 'bios' });
    agent.emit({ type: 'http.start', mac: mac(9), file: 'debian/vmlinuz', totalBytes: 10 });
    agent.emit({ type: 'http.progress', mac: mac(9), file: 'debian/vmlinuz', bytes: 5, totalBytes: 10 });
    agent.emit({ type: 'http.error', mac: mac(9), file: 'debian/vmlinuz', reason: 'not-found', error: 'not found', status: 404 });
    expect(seen).toEqual(['dhcp.discover', 'client:dhcp:phase', 'http.start', 'client:kernel:phase', 'http.progress', 'client:kernel:progress', 'http.error', 'client.failed', 'client:failed:phase']);
    expect(agent.tracker.get(mac(9))).toMatchObject({ phase: 'failed', error: 'upstream 404 for debian/vmlinuz' });
    await agent.stop();
  });
});
