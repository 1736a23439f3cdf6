import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../agent/config/load';
import { looksLikeUci, parseUci, uciToConfigObject } from '../../../agent/config/uci';

const fixture = (name: string): string => readFileSync(join(__dirname, '../../fixtures/uci', name), 'utf8');
const shippedDefault = join(__dirname, '../../../image/files/etc/config/bootrelay');

describe('parseUci', () => {
  it.each([
    ["option a 'x y'", 'x y'],
    ['option a "x y"', 'x y'],
    ['option a x', 'x'],
    [`option a 'it'\\''s'`, "it's"],
    ['option a "say \\"hi\\""', 'say "hi"'],
    ["option a 'back\\slash'", 'back\\slash'],
    ['option a "back\\\\slash"', 'back\\slash'],
    ['option a un\\ quoted', 'un quoted'],
    ["option a 'x'# comment", 'x'],
    ["option a 'a#b'", 'a#b'],
    ['option a "a;b"', 'a;b'],
    ['option a "joined\\\nhere"', 'joinedhere'],
    ['option a joined\\\nhere', 'joinedhere'],
    ["option a 'pre'\"mid\"post", 'premidpost'],
    ["option a 'l1\nl2'", 'l1\nl2'],
    ['option a "l1\nl2"', 'l1\nl2'],
    ["option a '1'; option b 2", '1'],
  ])('reads %j as %j', (line, value) => {
    const { pkg, issues } = parseUci(`config t 's'\n\t${line}\n`);
    expect(issues).toEqual([]);
    expect(pkg.sections[0]!.options.get('a')).toBe(value);
  });

  it('splits statements at a ; after a blank or a quote; a ; right after a bare word ends the line (as libuci)', () => {
    const opts = (t: string): Record<string, unknown> => {
      const { pkg, issues } = parseUci(t);
      expect(issues).toEqual([]);
      return Object.fromEntries(pkg.sections[0]!.options);
    };
    expect(opts("config t\n option a 1 ; option b '2'; option c 3\n")).toEqual({ a: '1', b: '2', c: '3' });
    expect(opts('config t\n option a 1; option b 2\n')).toEqual({ a: '1' });
    expect(opts('config t; option a 1\n')).toEqual({});
  });

  it('notes what uci silently ignores: text after a ; glued to a bare word, options set to nothing', () => {
    expect(parseUci("config t\n option a 1; option b 2\n option c ''\n option d\n option e 1 ; option f '2'; option g 3 # x;y\n").notes).toEqual([
      'bootrelay: line 2: "option b 2" after ";" is ignored (uci ends the line at a ";" right after an unquoted word: put a blank before it)',
      "bootrelay: line 3: option c has no value and is ignored (delete the line, or write list c '' for an empty item)",
      "bootrelay: line 4: option d has no value and is ignored (delete the line, or write list d '' for an empty item)",
    ]);
    expect(parseUci('config t; # only a comment after it\n').notes).toEqual([]);
    const { issues, warnings } = uciToConfigObject("config dhcp\n option mode server; option port 67\n");
    expect(issues).toEqual([]);
    expect(warnings).toEqual([expect.stringContaining('line 2: "option port 67" after ";" is ignored')]);
    // loadConfig (what the agent and `relayctl config check` use) passes them on as warnings
    const dir = mkdtempSync(join(tmpdir(), 'bootrelay-uci-'));
    const file = join(dir, 'bootrelay');
    writeFileSync(file, readFileSync(shippedDefault, 'utf8').replace("option mode 'server'", 'option mode server; option port 6767'));
    const r = loadConfig(file);
    rmSync(dir, { recursive: true });
    expect(r.ok).toBe(true);
    expect(r.warnings[0]).toMatch(/^bootrelay: line \d+: "option port 6767" after ";" is ignored/);
  });

  it('joins lines at a backslash-newline inside a word only', () => {
    expect(parseUci('config t\n option a joined\\\nhere\n').pkg.sections[0]!.options.get('a')).toBe('joinedhere');
    expect(parseUci("config t\n option b \\\n  '2'\n").issues).toEqual([
      'bootrelay: line 3: parse error (too many arguments): "2" (quote a value that has blanks)',
    ]);
  });

  it("sets nothing for option a '' or a valueless option; keeps an empty list item", () => {
    const { pkg, issues } = parseUci("config t\n option a 1\n option a ''\n option b\n list c ''\n");
    expect(issues).toEqual([]);
    expect(Object.fromEntries(pkg.sections[0]!.options)).toEqual({ a: '1', c: [''] });
  });

  it('rejects one section name with two types; non-strict parsing takes the second', () => {
    const text = "config t 'd'\n option x 1\nconfig u 'd'\n option y 2\n";
    expect(parseUci(text).issues).toEqual([
      'bootrelay: line 3: parse error (section of different type overwrites prior section with same name): "d" is a "t" section, line 1',
    ]);
    const loose = parseUci(text, 'bootrelay', false);
    expect(loose.issues).toEqual([]);
    expect(loose.pkg.sections.map((s) => [s.type, s.name, Object.fromEntries(s.options)])).toEqual([['u', 'd', { x: '1', y: '2' }]]);
  });

  it('collects list items in order and turns an option followed by list items into a list', () => {
    const { pkg } = parseUci("config t\n list l 'a'\n list l 'b'\n option o 'x'\n list o 'y'\n");
    expect(pkg.sections[0]!.options.get('l')).toEqual(['a', 'b']);
    expect(pkg.sections[0]!.options.get('o')).toEqual(['x', 'y']);
  });

  it('numbers sections per type and merges a redeclared named section', () => {
    const { pkg } = parseUci("config a\nconfig b\nconfig a 'n'\n option x 1\nconfig a 'n'\n option y 2\nconfig a\n");
    expect(pkg.sections.map((s) => [s.type, s.index, s.name])).toEqual([
      ['a', 0, undefined],
      ['b', 0, undefined],
      ['a', 1, 'n'],
      ['a', 2, undefined],
    ]);
    expect(Object.fromEntries(pkg.sections[2]!.options)).toEqual({ x: '1', y: '2' });
  });

  it.each([
    ["config t\n option a 'open", `line 2: parse error (EOF with unterminated '): the quote opened on line 2`],
    ["config t\n option a 'two\n option b 1", `line 3: parse error (EOF with unterminated '): the quote opened on line 2`],
    ['config t\n option a "open', 'line 2: parse error (EOF with unterminated "): the quote opened on line 2'],
    ["option a 'b'", 'line 1: parse error (option/list command found before the first section)'],
    ["config t\n option a 'b' 'c'", 'line 2: parse error (too many arguments): "c"'],
    ['config t\n option', 'line 2: parse error (option without name)'],
    ['config t\n option \n', 'line 2: parse error (insufficient arguments)'],
    ["config t 'bad-name'", 'line 1: parse error (invalid character in name field): "bad-name" (letters, digits and _ only)'],
    ["config t\n option 'bad.key' 1", 'line 2: parse error (invalid character in name field): "bad.key"'],
    ['frob x', 'line 1: parse error (invalid command): "frob" (expected config, option, list or package)'],
  ])('reports %j', (text, msg) => {
    const { issues } = parseUci(text);
    expect(issues).toHaveLength(1);
    expect(issues[0]).toContain(`bootrelay: ${msg}`);
  });
});

describe('looksLikeUci', () => {
  it('tells UCI text from JSON', () => {
    expect(looksLikeUci('{"lan":{}}')).toBe(false);
    expect(looksLikeUci('\n  {\n')).toBe(false);
    expect(looksLikeUci("# comment\nconfig lan\n")).toBe(true);
    expect(looksLikeUci(fixture('full.uci'))).toBe(true);
  });
});

describe('uciToConfigObject', () => {
  it('maps every section of the full fixture onto the contract fields', () => {
    const { config, issues } = uciToConfigObject(fixture('full.uci'));
    expect(issues).toEqual([]);
    expect(config).toEqual({
      agentId: 'dongle-01',
      stateDir: '/var/lib/bootrelay',
      log: { level: 'debug', levels: { tftp: 'trace', mqtt: 'warn' } },
      lan: { interface: 'br-lan', address: '10.99.0.1', prefix: 24 },
      dhcp: {
        mode: 'server',
        port: 67,
        proxyPort: 4011,
        range: ['10.99.0.100', '10.99.0.199'],
        leaseSeconds: 3600,
        router: '10.99.0.1',
        dns: ['10.99.0.1', '9.9.9.9'],
        ipxeNoProxyDhcp: true,
        netbootOnce: false,
        static: { '52:54:00:12:34:56': '10.99.0.50', '52:54:00:ab:cd:ef': '10.99.0.51' },
      },
      tftp: {
        port: 69,
        maxBlksize: 1468,
        maxWindowsize: 8,
        timeout: 2,
        retries: 5,
        maxTransfers: 32,
        maxTransfersPerClient: 2,
      },
      http: { port: 8080 },
      upstream: {
        url: 'http://10.99.1.2/boot/',
        headers: { Authorization: 'Bearer abc:def', 'X-Relay': 'dongle-01' },
        timeoutMs: 15000,
        caFile: '/etc/ssl/certs/ca-certificates.crt',
      },
      cache: { dir: '/var/cache/bootrelay', maxBytes: 4 * 1024 ** 3, ttlSeconds: 86400, negativeTtlSeconds: 60 },
      boot: {
        defaultProfile: 'debian',
        loaders: {
          bios: 'ipxe/undionly.kpxe',
          'uefi-x64': ['ipxe/snponly.efi', 'ipxe/ipxe.efi'],
          'uefi-arm64': 'ipxe/ipxe-arm64.efi',
        },
        profiles: {
          debian: {
            kernel: 'debian/vmlinuz',
            initrd: ['debian/initrd.img'],
            cmdline: 'console=ttyS0 preseed/url="http://10.99.0.1/p.cfg" quiet',
            sha256: { 'debian/vmlinuz': '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef' },
          },
          menu: { script: 'menus/main.ipxe' },
          'rescue-x': { kernel: 'rescue/vmlinuz', cmdline: `It's "fine"` },
        },
        assign: { '52:54:00:12:34:56': 'menu' },
      },
      mqtt: {
        url: 'mqtt://10.99.1.2:1883',
        username: 'relay',
        password: 'p#ss w;rd',
        prefix: 'bootrelay',
        journalMaxEvents: 5000,
        homeAssistant: true,
        commands: false,
      },
      control: { socket: '/run/bootrelay.sock' },
    });
  });

  it('maps the minimal fixture, leaving defaults to the validator and dropping a disabled mqtt', () => {
    const { config, issues } = uciToConfigObject(fixture('minimal.uci'));
    expect(issues).toEqual([]);
    expect(config).toEqual({
      lan: { interface: 'br-lan', address: '192.168.1.1', prefix: 24 },
      dhcp: { range: ['192.168.1.100', '192.168.1.199'] },
      upstream: { url: 'http://boot.example.net/boot/' },
    });
  });

  it.each([
    ['0', false],
    ['off', false],
    ['false', false],
    ['no', false],
    ['1', true],
    ['on', true],
    ['true', true],
    ['yes', true],
  ])('reads boolean %j as %j', (v, b) => {
    const { config, issues } = uciToConfigObject(`config dhcp\n option netboot_once '${v}'\n`);
    expect(issues).toEqual([]);
    expect(config).toEqual({ dhcp: { netbootOnce: b } });
  });

  it('turns tftp enabled 0 into tftp: false', () => {
    expect(uciToConfigObject("config tftp\n option enabled '0'\n option port 69\n").config).toEqual({ tftp: false });
  });

  it('accepts camelCase option names and a single "first-last" range', () => {
    const { config, issues } = uciToConfigObject("config dhcp\n option leaseSeconds 60\n option range '10.99.0.10-10.99.0.20'\n");
    expect(issues).toEqual([]);
    expect(config).toEqual({ dhcp: { leaseSeconds: 60, range: ['10.99.0.10', '10.99.0.20'] } });
  });

  it('names the UCI path, what was expected and what was found for unparsable values', () => {
    const { issues } = uciToConfigObject(fixture('bad-number.uci'));
    expect(issues).toEqual([
      'bootrelay.@lan[0].prefix: expected an integer, got "twenty-four"',
      'bootrelay.@dhcp[0].lease_seconds: expected an integer, got "abc"',
      'bootrelay.@dhcp[0].netboot_once: expected a boolean (1/0, on/off, true/false, yes/no), got "maybe"',
      'bootrelay.@cache[0].max_bytes: expected a size in bytes (e.g. 4000000000 or 4G), got "4 lots"',
    ]);
  });

  it('reports structural problems, each on one line naming where', () => {
    const { issues } = uciToConfigObject(fixture('bad-structure.uci'));
    // the file's first syntax error (as `uci` reports it), then what the sections non-strict
    // parsing (config_load) still reads would give: `option prefix` of the rejected
    // `config lan 'bad-name'` lands in the section before it
    expect(issues).toEqual([
      'bootrelay: line 1: parse error (option/list command found before the first section)',
      expect.stringMatching(/^bootrelay\.main\.colour: unknown option for a "agent" section \(expected one of enabled, agent_id, /),
      expect.stringMatching(/^bootrelay\.@frobnicator\[0\]: unknown section type "frobnicator" \(expected one of agent, lan, /),
      'bootrelay.@dhcp[0].range_end: missing (range_start is set)',
      'bootrelay.@dhcp[1]: only one "dhcp" section is allowed (the first is bootrelay.@dhcp[0])',
      'bootrelay.@loader[0].arch: missing (e.g. bios, uefi-x64, uefi-arm64)',
      "bootrelay.@profile[0]: a profile needs a name (config profile 'NAME' or option name)",
      'bootrelay.@assign[0].profile: missing (an assignment needs mac and profile)',
      'bootrelay.@assign[0].prefix: unknown option for a "assign" section (expected one of mac, profile)',
      'bootrelay.@upstream[0].header: expected "Name: value", got "no colon here"',
    ]);
  });

  it('maps the shipped default /etc/config/bootrelay without issues', async () => {
    const { config, issues } = uciToConfigObject(readFileSync(shippedDefault, 'utf8'));
    expect(issues).toEqual([]);
    expect(config).toMatchObject({ lan: { interface: 'br-lan' }, dhcp: { mode: 'server' } });
    // validate through the agent's own validator once it exists
    const loadPath = join(__dirname, '../../../agent/config/load.ts');
    if (existsSync(loadPath)) {
      const load = (await import(/* @vite-ignore */ loadPath)) as Record<string, unknown>;
      if (typeof load.parseConfig === 'function') {
        const r = (load.parseConfig as (o: unknown) => { ok: boolean; issues?: unknown })(config);
        expect(r.issues ?? []).toEqual([]);
        expect(r.ok).toBe(true);
      }
    }
  });
});
