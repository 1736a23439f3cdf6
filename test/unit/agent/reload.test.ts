import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../agent/config/schema';
import type { Config } from '../../../agent/config/types';
import { restartPlan } from '../../../agent/reload';

const base = (() => {
  const r = parseConfig({
    agentId: 'r',
    stateDir: '/tmp/br-reload-state',
    lan: { interface: 'lo', address: '10.99.0.1', prefix: 24 },
    upstream: { url: 'http://10.99.9.1/boot/' },
    mqtt: { url: 'mqtt://127.0.0.1:1883' },
    boot: { loaders: { bios: 'ipxe/undionly.kpxe' }, profiles: { debian: { kernel: 'debian/vmlinuz' } } },
  });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
})();

const change = (f: (c: Config) => void): Config => {
  const c = structuredClone(base);
  f(c);
  return c;
};

describe('restartPlan', () => {
  it.each<[string, (c: Config) => void, string[], string[]]>([
    ['nothing', () => {}, [], []],
    ['a profile', (c) => (c.boot.profiles.rescue = { kernel: 'r/vmlinuz' }), ['boot'], ['dhcp']],
    ['the HTTP port', (c) => (c.http.port = 8080), ['http'], ['http', 'dhcp']],
    ['the HTTP port and a profile', (c) => ((c.http.port = 8080), (c.boot.defaultProfile = 'debian'), (c.boot.profiles.x = {})), ['http', 'boot'], ['http', 'dhcp']],
    ['TFTP off', (c) => (c.tftp = false), ['tftp'], ['tftp', 'dhcp']],
    ['the LAN address', (c) => (c.lan.address = '10.99.0.2'), ['lan'], ['http', 'tftp', 'dhcp']],
    ['the upstream', (c) => (c.upstream.url = 'http://10.99.9.2/boot/'), ['upstream'], ['cache']],
    ['the cache size', (c) => (c.cache.maxBytes = 1e6), ['cache'], ['cache']],
    ['the log level', (c) => (c.log.level = 'debug'), ['log'], ['http', 'tftp', 'dhcp', 'mqtt']],
    ['the state directory', (c) => (c.stateDir = '/tmp/other'), ['stateDir'], ['dhcp', 'mqtt']],
    ['the agent id', (c) => (c.agentId = 'other'), ['agentId'], ['mqtt']],
    ['the control socket', (c) => (c.control.socket = '/tmp/other.sock'), ['control'], ['control']],
    ['MQTT off', (c) => delete c.mqtt, ['mqtt'], ['mqtt']],
    ['netboot-once', (c) => (c.dhcp.netbootOnce = true), ['dhcp'], ['dhcp']],
    ['DHCPv6 on', (c) => ((c.lan.address6 = 'fd99::1'), (c.dhcp6.mode = 'server')), ['lan', 'dhcp6'], ['http', 'tftp', 'dhcp', 'dhcp6']],
  ])('%s', (_what, f, changed, restart) => {
    expect(restartPlan(base, change(f))).toEqual({ changed, restart });
  });
});
