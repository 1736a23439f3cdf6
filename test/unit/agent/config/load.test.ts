import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, parseConfig, parseConfigText, stripJsonComments } from '../../../../agent/config/load';

const FIX = join(__dirname, '../../../fixtures/config');

function base(): Record<string, any> {
  return {
    lan: { address: '10.99.0.1', prefix: 24 },
    upstream: { url: 'http://10.99.1.2/boot/' },
    boot: {
      loaders: { bios: 'ipxe/undionly.kpxe', 'uefi-x64': ['ipxe/snponly.efi', 'ipxe/ipxe.efi'] },
      defaultProfile: 'debian',
      profiles: { debian: { kernel: 'debian/vmlinuz', initrd: ['debian/initrd.img'] }, menu: { script: 'menus/main.ipxe' } },
    },
  };
}

function messages(obj: unknown): string[] {
  const r = parseConfig(obj);
  return r.ok ? [] : r.issues.map((i) => i.message);
}

describe('parseConfig', () => {
  it('fills every default for a minimal config', () => {
    const r = parseConfig(base());
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const c = r.config;
    expect(c.agentId).toBe(hostname());
    expect(c.stateDir).toBe('/var/lib/bootrelay');
    expect(c.lan.interface).toBe('br-lan');
    expect(c.dhcp).toEqual({
      mode: 'server',
      port: 67,
      proxyPort: 4011,
      range: ['10.99.0.100', '10.99.0.199'],
      leaseSeconds: 3600,
      router: '10.99.0.1',
      dns: [],
      static: {},
      ipxeNoProxyDhcp: true,
      netbootOnce: false,
    });
    expect(c.tftp).toEqual({ port: 69, maxBlksize: 1468, maxWindowsize: 64, timeout: 1, retries: 6, maxTransfers: 64, maxTransfersPerClient: 4 });
    expect(c.http).toEqual({ port: 80 });
    expect(c.cache).toEqual({ dir: '/var/cache/bootrelay', maxBytes: 4e9, ttlSeconds: 3600, negativeTtlSeconds: 30 });
    expect(c.upstream).toEqual({ url: 'http://10.99.1.2/boot/', headers: {}, timeoutMs: 15000 });
    expect(c.mqtt).toBeUndefined();
    expect(c.control.socket).toBe('/run/bootrelay.sock');
    expect(c.log).toEqual({ level: 'info', levels: {} });
  });

  it('normalises loaders, initrds, MACs, paths and the upstream URL', () => {
    const o = base();
    o.upstream.url = 'https://boot.example/pxe';
    o.boot.loaders.bios = '/ipxe\\undionly.kpxe';
    o.boot.profiles.debian.initrd = 'debian//initrd.img';
    o.boot.assign = { '52-54-00-AB-CD-EF': 'menu' };
    o.dhcp = { static: { '525400ABCDEF': '10.99.0.50' }, dns: '10.99.0.1' };
    const r = parseConfig(o);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.upstream.url).toBe('https://boot.example/pxe/');
    expect(r.config.boot.loaders).toEqual({ bios: ['ipxe/undionly.kpxe'], 'uefi-x64': ['ipxe/snponly.efi', 'ipxe/ipxe.efi'] });
    expect(r.config.boot.profiles.debian!.initrd).toEqual(['debian/initrd.img']);
    expect(r.config.boot.assign).toEqual({ '52:54:00:ab:cd:ef': 'menu' });
    expect(r.config.dhcp.static).toEqual({ '52:54:00:ab:cd:ef': '10.99.0.50' });
    expect(r.config.dhcp.dns).toEqual(['10.99.0.1']);
  });

  it('accepts tftp: false and mode off without loaders', () => {
    const o = base();
    o.tftp = false;
    o.dhcp = { mode: 'off' };
    delete o.boot.loaders;
    const r = parseConfig(o);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.config.tftp).toBe(false);
  });

  it.each([
    ['10.99.0.1', 24, ['10.99.0.100', '10.99.0.199']],
    ['10.99.0.150', 24, ['10.99.0.151', '10.99.0.250']],
    ['10.99.0.240', 24, ['10.99.0.100', '10.99.0.199']],
    ['10.99.0.1', 28, ['10.99.0.8', '10.99.0.14']],
    ['10.99.0.10', 28, ['10.99.0.3', '10.99.0.9']],
  ] as const)('defaults the range for %s/%d to %j, never holding lan.address', (address, prefix, range) => {
    const o = base();
    o.lan = { address, prefix };
    const r = parseConfig(o);
    expect(r.ok ? r.config.dhcp.range : r.issues.map((i) => i.message)).toEqual(range);
  });

  it('defaults defaultProfile to the only profile', () => {
    const o = base();
    delete o.boot.defaultProfile;
    delete o.boot.profiles.menu;
    const r = parseConfig(o);
    expect(r.ok && r.config.boot.defaultProfile).toBe('debian');
  });

  it('refuses upstream.headers node:http would refuse at every request (bad name, CR/LF in a value)', () => {
    const o = base();
    o.upstream.headers = { 'bad header': 'x', 'x-split': 'a\r\nx-injected: 1', authorization: 'Bearer t0k3n' };
    expect(messages(o)).toEqual([
      'upstream.headers["bad header"]: expected an HTTP header name (letters, digits, "-"), got "bad header"',
      'upstream.headers.x-split: expected a header value without control characters (no CR/LF), got "a\\r\\nx-injected: 1"',
    ]);
    o.upstream.headers = { authorization: 'Bearer t0k3n', 'x-Mixed_Case.1': 'ok\tvalue' };
    expect(parseConfig(o).ok).toBe(true);
  });

  it('warns (not fails) for a static address inside the range', () => {
    const o = base();
    o.dhcp = { static: { '52:54:00:12:34:56': '10.99.0.150' } };
    const r = parseConfig(o);
    expect(r.ok).toBe(true);
    expect(r.warnings.join('\n')).toMatch(/10\.99\.0\.150 is inside dhcp\.range/);
  });

  const table: Array<[string, (o: Record<string, any>) => void, string]> = [
    ['range end outside the prefix', (o) => (o.dhcp = { range: ['10.99.0.100', '10.98.0.5'] }), 'dhcp.range[1]: expected an IPv4 address inside 10.99.0.0/24, got "10.98.0.5"'],
    ['range start not an address', (o) => (o.dhcp = { range: ['10.99.0.300', '10.99.0.5'] }), 'dhcp.range[0]: expected an IPv4 address inside 10.99.0.0/24, got "10.99.0.300"'],
    ['range reversed', (o) => (o.dhcp = { range: ['10.99.0.200', '10.99.0.100'] }), 'dhcp.range: expected first address not after the last, got ["10.99.0.200","10.99.0.100"]'],
    ['range holding lan.address', (o) => (o.dhcp = { range: ['10.99.0.1', '10.99.0.100'] }), 'dhcp.range: expected a range that leaves out lan.address 10.99.0.1'],
    ['range not a pair', (o) => (o.dhcp = { range: '10.99.0.1' }), 'dhcp.range: expected a list of two IPv4 addresses [first, last], got "10.99.0.1"'],
    ['unknown top-level key', (o) => (o.tfpt = { port: 69 }), 'tfpt: expected one of the keys'],
    ['unknown nested key', (o) => (o.tftp = { prot: 69 }), 'tftp.prot: expected one of the keys port, maxBlksize'],
    ['unknown profile key', (o) => (o.boot.profiles.debian.initrds = ['x']), 'boot.profiles.debian.initrds: expected one of the keys kernel, initrd'],
    ['port out of range', (o) => (o.http = { port: 70000 }), 'http.port: expected a port number from 0 to 65535, got 70000'],
    ['port as string', (o) => (o.tftp = { port: '69' }), 'tftp.port: expected a port number from 0 to 65535, got "69"'],
    ['tftp true-ish string', (o) => (o.tftp = 'off'), 'tftp: expected an object or false, got "off"'],
    ['bad mode', (o) => (o.dhcp = { mode: 'relay' }), 'dhcp.mode: expected one of "server", "proxy", "off", got "relay"'],
    ['lan missing', (o) => delete o.lan, 'lan: expected an object with the LAN address and prefix ({"address": "10.99.0.1", "prefix": 24}), got nothing'],
    ['lan address bad', (o) => (o.lan.address = '10.99.0'), 'lan.address: expected an IPv4 address, got "10.99.0"'],
    ['lan address is the network', (o) => (o.lan.address = '10.99.0.0'), 'lan.address: expected a host address of 10.99.0.0/24'],
    ['prefix too big', (o) => (o.lan.prefix = 33), 'lan.prefix: expected a prefix length from 1 to 32, got 33'],
    ['router not IPv4', (o) => (o.dhcp = { router: 'gateway' }), 'dhcp.router: expected an IPv4 address, got "gateway"'],
    ['dns entry bad', (o) => (o.dhcp = { dns: ['1.1.1.1', 'dns.example'] }), 'dhcp.dns[1]: expected an IPv4 address, got "dns.example"'],
    ['static bad MAC', (o) => (o.dhcp = { static: { '52:54:00:12:34': '10.99.0.50' } }), 'dhcp.static["52:54:00:12:34"]: expected a MAC address as key'],
    ['static outside subnet', (o) => (o.dhcp = { static: { '52:54:00:12:34:56': '10.98.0.50' } }), 'dhcp.static["52:54:00:12:34:56"]: expected an IPv4 address inside 10.99.0.0/24, got "10.98.0.50"'],
    ['static is lan.address', (o) => (o.dhcp = { static: { '52:54:00:12:34:56': '10.99.0.1' } }), 'dhcp.static["52:54:00:12:34:56"]: expected an address other than lan.address'],
    [
      'static duplicate address',
      (o) => (o.dhcp = { static: { '52:54:00:12:34:56': '10.99.0.50', '52:54:00:12:34:57': '10.99.0.50' } }),
      'dhcp.static["52:54:00:12:34:57"]: expected an address not already given to 52:54:00:12:34:56',
    ],
    ['lease too short', (o) => (o.dhcp = { leaseSeconds: 5 }), 'dhcp.leaseSeconds: expected a number of seconds from 60'],
    ['bool as string', (o) => (o.dhcp = { netbootOnce: 'yes' }), 'dhcp.netbootOnce: expected true or false, got "yes"'],
    ['upstream ftp', (o) => (o.upstream.url = 'ftp://x/'), 'upstream.url: expected a URL (http:// or https://), got "ftp://x/"'],
    ['upstream missing', (o) => delete o.upstream, 'upstream: expected an object with the upstream boot server\'s url ({"url": "http://host/boot/"}), got nothing'],
    ['upstream header not string', (o) => (o.upstream.headers = { 'X-A': 1 }), 'upstream.headers.X-A: expected a string, got 1'],
    ['loader unknown arch', (o) => (o.boot.loaders['uefi-x86'] = 'a.efi'), 'boot.loaders.uefi-x86: expected an arch key (bios, uefi-ia32'],
    ['loader escapes', (o) => (o.boot.loaders.bios = '../etc/passwd'), 'boot.loaders.bios: expected a clean path relative to upstream.url (path escape refused: ../etc/passwd), got "../etc/passwd"'],
    ['loader empty list', (o) => (o.boot.loaders.bios = []), 'boot.loaders.bios: expected a path or a non-empty list of paths, got []'],
    ['loader list item bad', (o) => (o.boot.loaders['uefi-x64'] = ['ok.efi', 5]), 'boot.loaders.uefi-x64[1]: expected a path relative to upstream.url, got 5'],
    ['no loaders', (o) => (o.boot.loaders = {}), 'boot.loaders: expected at least one loader'],
    ['defaultProfile unknown', (o) => (o.boot.defaultProfile = 'arch'), 'boot.defaultProfile: expected a profile name (debian, menu), got "arch"'],
    ['defaultProfile missing with two profiles', (o) => delete o.boot.defaultProfile, 'boot.defaultProfile: expected a profile name (debian, menu), got nothing'],
    ['assign unknown profile', (o) => (o.boot.assign = { '52:54:00:12:34:56': 'nope' }), 'boot.assign["52:54:00:12:34:56"]: expected a profile name (debian, menu), got "nope"'],
    ['assign bad MAC', (o) => (o.boot.assign = { 'zz:54:00:12:34:56': 'menu' }), 'boot.assign["zz:54:00:12:34:56"]: expected a MAC address as key'],
    ['profile with neither', (o) => (o.boot.profiles.empty = { cmdline: 'x' }), 'boot.profiles.empty: expected a "kernel" or a "script", got neither'],
    ['profile kernel absolute escape', (o) => (o.boot.profiles.debian.kernel = 'C:/vmlinuz'), 'boot.profiles.debian.kernel: expected a clean path'],
    ['sha256 not hex', (o) => (o.boot.profiles.debian.sha256 = { 'debian/vmlinuz': 'abc' }), 'boot.profiles.debian.sha256["debian/vmlinuz"]: expected a sha256 as 64 hex digits, got "abc"'],
    ['no profiles', (o) => (o.boot.profiles = {}), 'boot.profiles: expected an object with at least one profile, got {}'],
    ['mqtt url bad', (o) => (o.mqtt = { url: 'http://x' }), 'mqtt.url: expected a URL (mqtt:// or mqtts://'],
    ['mqtt prefix wildcard', (o) => (o.mqtt = { url: 'mqtt://127.0.0.1', prefix: 'a/#' }), 'mqtt.prefix: expected a topic prefix without + or #, got "a/#"'],
    ['log level bad', (o) => (o.log = { level: 'verbose' }), 'log.level: expected one of "fatal"'],
    ['log levels bad', (o) => (o.log = { levels: { tftp: 'loud' } }), 'log.levels.tftp: expected one of "fatal"'],
    ['agentId with slash', (o) => (o.agentId = 'a/b'), 'agentId: expected a name of letters'],
    ['stateDir empty', (o) => (o.stateDir = ''), 'stateDir: expected a non-empty string, got ""'],
    ['cache maxBytes negative', (o) => (o.cache = { maxBytes: -1 }), 'cache.maxBytes: expected a number of bytes from 0'],
    ['tftp blksize too big', (o) => (o.tftp = { maxBlksize: 70000 }), 'tftp.maxBlksize: expected a block size from 8 to 65464, got 70000'],
    ['tftp port equals dhcp port', (o) => (o.tftp = { port: 67 }), 'tftp.port: expected a port other than dhcp.port (67), got 67'],
    ['control socket not string', (o) => (o.control = { socket: 1 }), 'control.socket: expected a string, got 1'],
  ];

  it.each(table)('reports %s', (_name, mutate, expected) => {
    const o = base();
    mutate(o);
    const msgs = messages(o);
    expect(msgs.some((m) => m.startsWith(expected)), `${msgs.join('\n')}\n-- wanted: ${expected}`).toBe(true);
  });

  it('reports a non-object config', () => {
    expect(messages([1, 2])).toEqual(['(config): expected an object, got [1,2]']);
    expect(messages(null)).toEqual(['(config): expected an object, got null']);
  });

  it('collects every problem at once', () => {
    const o = base();
    o.http = { port: -1 };
    o.tftp = { port: 'x', bogus: true };
    o.dhcp = { range: ['a', 'b'] };
    o.boot.defaultProfile = 'zzz';
    const msgs = messages(o);
    expect(msgs.length).toBeGreaterThanOrEqual(6);
    for (const p of ['http.port', 'tftp.port', 'tftp.bogus', 'dhcp.range[0]', 'dhcp.range[1]', 'boot.defaultProfile'])
      expect(msgs.some((m) => m.startsWith(p + ':')), p).toBe(true);
  });

  it('does not check the range against the subnet in proxy mode', () => {
    const o = base();
    o.dhcp = { mode: 'proxy', range: ['192.168.1.10', '192.168.1.20'] };
    expect(parseConfig(o).ok).toBe(true);
  });

  it('does not mutate its input', () => {
    const o = base();
    o.dhcp = { dns: '10.99.0.1' };
    const before = JSON.stringify(o);
    parseConfig(o);
    expect(JSON.stringify(o)).toBe(before);
  });
});

describe('stripJsonComments', () => {
  it('keeps // and /* inside strings', () => {
    const t = '{"u": "http://x/a//b", "c": "/* no */", // yes\n "d": 1, /* block\n */ }';
    expect(JSON.parse(stripJsonComments(t))).toEqual({ u: 'http://x/a//b', c: '/* no */', d: 1 });
  });
  it('keeps escaped quotes in strings', () => {
    expect(JSON.parse(stripJsonComments('{"a": "q\\" // x", "b": [1,2,],}'))).toEqual({ a: 'q" // x', b: [1, 2] });
  });
});

describe('loadConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'brcfg-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('loads the contract example (jsonc)', () => {
    const r = loadConfig(join(FIX, 'full.jsonc'));
    expect(r.ok ? [] : r.issues.map((i) => i.message)).toEqual([]);
    if (!r.ok) return;
    expect(r.config.agentId).toBe('dongle-01');
    expect(r.config.mqtt).toMatchObject({ url: 'mqtt://127.0.0.1:1883', prefix: 'bootrelay', journalMaxEvents: 10000 });
    expect(r.config.boot.assign).toEqual({ '52:54:00:12:34:56': 'menu' });
  });

  it('loads the minimal fixture', () => {
    const r = loadConfig(join(FIX, 'minimal.json'));
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.config.upstream.url).toBe('http://10.99.1.2/boot/');
  });

  it('names the bad field of the bad fixture', () => {
    const r = loadConfig(join(FIX, 'bad.json'));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues[0]!.message).toBe('dhcp.range[1]: expected an IPv4 address inside 10.99.0.0/24, got "10.98.0.5"');
  });

  it('reports a missing file', () => {
    const r = loadConfig(join(dir, 'nope.json'));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues[0]!.message).toMatch(/expected a readable config file at .*nope\.json, got ENOENT/);
  });

  it('reports a JSON syntax error with its line', () => {
    const f = join(dir, 'syntax.json');
    writeFileSync(f, '{\n  "lan": {\n    "address": "10.99.0.1" "prefix": 24\n  }\n}\n');
    const r = loadConfig(f);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues[0]!.message).toMatch(/expected valid JSON in .*syntax\.json, got a syntax error at line 3/);
  });

  it('reports an empty file', () => {
    expect(parseConfigText('  \n', 'x').ok).toBe(false);
  });

  it('reads the shipped UCI file and the UCI fixtures through uci.ts', () => {
    const root = join(__dirname, '../../../..');
    const image = loadConfig(join(root, 'image/files/etc/config/bootrelay'));
    expect(image.ok ? [] : image.issues.map((i) => i.message)).toEqual([]);
    const full = loadConfig(join(FIX, '../uci/full.uci'));
    expect(full.ok ? [] : full.issues.map((i) => i.message)).toEqual([]);
    const minimal = loadConfig(join(FIX, '../uci/minimal.uci'));
    expect(minimal.ok ? [] : minimal.issues.map((i) => i.message)).toEqual(['boot: expected an object with loaders and profiles, got nothing']);
    const bad = loadConfig(join(FIX, '../uci/bad-number.uci'));
    expect(bad.ok ? [] : bad.issues.map((i) => i.message)).toContain('bootrelay.@dhcp[0].lease_seconds: expected an integer, got "abc"');
  });

  it('reads UCI text through uci.ts', () => {
    const r = parseConfigText("config bootrelay 'main'\n\toption agent_id 'x'\n", 'uci');
    // the UCI mapping is another module's; here only that it is used (an object or UCI issues come back)
    expect(r.ok ? typeof r.obj : r.issues.length > 0).toBeTruthy();
  });
});
