/**
 * UCI (OpenWrt's Unified Configuration Interface) for bootrelay.
 *
 * parseUci(text) reads the `/etc/config/<package>` syntax the way uci's own
 * file parser (libuci file.c) does:
 *   - statements `package NAME`, `config TYPE ['NAME']`, `option KEY 'VALUE'`, `list KEY 'VALUE'`;
 *   - a statement ends at a newline or `;`; tokens are split by blanks;
 *   - a token may concatenate parts: `'single'` (no escapes), `"double"` (backslash escapes
 *     the next character), and unquoted text (backslash escapes too);
 *   - a backslash at the end of a line continues the statement (and the token) on the next
 *     line, without a newline; otherwise a quote must close on its own line;
 *   - `#` outside quotes starts a comment running to the end of the line.
 *
 * uciToConfigObject(text) maps /etc/config/bootrelay onto the contract's JSON config
 * object (shared/CONTRACT.md). It only translates: the result still goes through the
 * agent's config validator (agent/config/load.ts), which fills defaults and checks
 * ranges. Problems found at the UCI level (syntax, unknown section types or options,
 * a number that is not a number) are issue strings naming the UCI path, e.g.
 *   bootrelay.@dhcp[0].lease_seconds: expected an integer, got "abc"
 *
 * The UCI form of every field is documented in image/README.md and in the shipped
 * default image/files/etc/config/bootrelay.
 */

export interface UciSection {
  type: string;
  /** the section name when given (`config profile 'debian'`) */
  name?: string;
  /** position among the sections of the same type (the `@type[i]` index) */
  index: number;
  line: number;
  /** option → value (a string for `option`, an array for `list`) */
  options: Map<string, string | string[]>;
  /** line of each option, for messages */
  optionLines: Map<string, number>;
}

export interface UciPackage {
  name?: string;
  sections: UciSection[];
}

export interface UciParseResult {
  pkg: UciPackage;
  issues: string[];
}

const NAME_RE = /^[A-Za-z0-9_]+$/;
const TYPE_RE = /^[A-Za-z0-9_-]+$/;

interface Statement {
  tokens: string[];
  line: number;
  /** an unterminated quote: the statement is reported and dropped */
  broken?: boolean;
}

/** Splits UCI text into statements of tokens, applying quoting, escapes and comments. */
function tokenize(text: string, pkgName: string, issues: string[]): Statement[] {
  const out: Statement[] = [];
  let tokens: string[] = [];
  let tok: string | null = null;
  let line = 1;
  let stmtLine = 1;
  let broken = false;
  const n = text.length;
  let i = 0;

  const flush = (): void => {
    if (tok !== null) {
      if (tokens.length === 0) stmtLine = line;
      tokens.push(tok);
      tok = null;
    }
  };
  const endStatement = (): void => {
    flush();
    if (tokens.length) out.push(broken ? { tokens, line: stmtLine, broken } : { tokens, line: stmtLine });
    tokens = [];
    broken = false;
  };
  const add = (chunk: string): void => {
    tok = (tok ?? '') + chunk;
  };
  const startTok = (): void => {
    if (tok === null) {
      if (tokens.length === 0) stmtLine = line;
      tok = '';
    }
  };

  while (i < n) {
    const c = text[i]!;
    if (c === '\n') {
      endStatement();
      line++;
      i++;
    } else if (c === ' ' || c === '\t' || c === '\r' || c === '\f' || c === '\v') {
      flush();
      i++;
    } else if (c === '#') {
      // comment to end of line (libuci: '#' outside quotes ends the line)
      while (i < n && text[i] !== '\n') i++;
    } else if (c === ';') {
      endStatement();
      i++;
    } else if (c === "'") {
      startTok();
      const startLine = line;
      i++;
      let closed = false;
      while (i < n) {
        const d = text[i]!;
        if (d === "'") {
          closed = true;
          i++;
          break;
        }
        if (d === '\n') break; // libuci reads line by line: a quote ends on its line
        add(d);
        i++;
      }
      if (!closed) {
        issues.push(`${pkgName}: line ${startLine}: unterminated single quote`);
        broken = true;
      }
    } else if (c === '"') {
      startTok();
      const startLine = line;
      i++;
      let closed = false;
      while (i < n) {
        const d = text[i]!;
        if (d === '"') {
          closed = true;
          i++;
          break;
        }
        if (d === '\\') {
          const e = text[i + 1];
          if (e === undefined) {
            i++;
            break;
          }
          if (e === '\n' || (e === '\r' && text[i + 2] === '\n')) {
            // continuation inside a double-quoted string: the backslash-newline vanishes
            i += e === '\n' ? 2 : 3;
            line++;
            continue;
          }
          add(e);
          i += 2;
          continue;
        }
        if (d === '\n') break;
        add(d);
        i++;
      }
      if (!closed) {
        issues.push(`${pkgName}: line ${startLine}: unterminated double quote`);
        broken = true;
      }
    } else if (c === '\\') {
      const e = text[i + 1];
      if (e === undefined) {
        i++;
      } else if (e === '\n' || (e === '\r' && text[i + 2] === '\n')) {
        // line continuation: the statement (and an unquoted token) goes on on the next line
        i += e === '\n' ? 2 : 3;
        line++;
      } else {
        startTok();
        add(e);
        i += 2;
      }
    } else {
      startTok();
      add(c);
      i++;
    }
  }
  endStatement();
  return out;
}

/** Parses UCI text. Syntax problems are collected as issues; parsing goes on after them. */
export function parseUci(text: string, pkgName = 'bootrelay'): UciParseResult {
  const issues: string[] = [];
  const pkg: UciPackage = { sections: [] };
  const typeCount = new Map<string, number>();
  let cur: UciSection | undefined;
  // after a `config` line that could not be read, its options are skipped silently
  let skipping = false;

  for (const st of tokenize(text, pkgName, issues)) {
    if (st.broken) continue;
    const [cmd, ...args] = st.tokens;
    const where = `${pkgName}: line ${st.line}`;
    switch (cmd) {
      case 'package':
        if (args.length !== 1) issues.push(`${where}: "package" takes one name`);
        else pkg.name = args[0];
        break;
      case 'config': {
        cur = undefined;
        skipping = true;
        if (args.length < 1 || args.length > 2) {
          issues.push(`${where}: "config" takes a type and an optional name, got ${args.length} arguments`);
          break;
        }
        const [type, name] = args as [string, string | undefined];
        if (!TYPE_RE.test(type)) {
          issues.push(`${where}: invalid section type ${JSON.stringify(type)} (letters, digits, _ and - only)`);
          break;
        }
        if (name !== undefined && !NAME_RE.test(name)) {
          issues.push(`${where}: invalid section name ${JSON.stringify(name)} (letters, digits and _ only)`);
          break;
        }
        skipping = false;
        const index = typeCount.get(type) ?? 0;
        typeCount.set(type, index + 1);
        // libuci: a second `config TYPE 'NAME'` with the same name merges into the first
        const existing = name !== undefined ? pkg.sections.find((s) => s.name === name) : undefined;
        if (existing) {
          if (existing.type !== type) {
            issues.push(`${where}: section "${name}" redeclared as "${type}" (it is a "${existing.type}")`);
          }
          typeCount.set(type, index);
          cur = existing;
          break;
        }
        cur = { type, name, index, line: st.line, options: new Map(), optionLines: new Map() };
        pkg.sections.push(cur);
        break;
      }
      case 'option':
      case 'list': {
        if (!cur) {
          if (skipping) break;
          issues.push(`${where}: "${cmd}" outside of a config section`);
          break;
        }
        if (args.length !== 2) {
          issues.push(`${where}: "${cmd}" takes a name and one value, got ${args.length} arguments`);
          break;
        }
        const [key, value] = args as [string, string];
        if (!NAME_RE.test(key)) {
          issues.push(`${where}: invalid option name ${JSON.stringify(key)} (letters, digits and _ only)`);
          break;
        }
        const prev = cur.options.get(key);
        if (cmd === 'option') cur.options.set(key, value);
        else if (Array.isArray(prev)) prev.push(value);
        // libuci turns an existing string option into a list when a list item is added
        else cur.options.set(key, prev === undefined ? [value] : [prev, value]);
        cur.optionLines.set(key, st.line);
        break;
      }
      default:
        issues.push(`${where}: unknown statement ${JSON.stringify(cmd)} (expected package, config, option or list)`);
    }
  }
  return { pkg, issues };
}

/** True when the text is UCI rather than JSON (its first non-blank, non-comment character is not `{`). */
export function looksLikeUci(text: string): boolean {
  for (const raw of text.split('\n')) {
    const l = raw.trim();
    if (!l || l.startsWith('#')) continue;
    return !l.startsWith('{');
  }
  return false;
}

/** The `uci` path of a section: `bootrelay.main` when named, `bootrelay.@dhcp[0]` otherwise. */
export function sectionPath(pkgName: string, s: UciSection): string {
  return s.name !== undefined ? `${pkgName}.${s.name}` : `${pkgName}.@${s.type}[${s.index}]`;
}

// ---------------------------------------------------------------------------
// Mapping /etc/config/bootrelay → the contract's config object
// ---------------------------------------------------------------------------

const TRUE = new Set(['1', 'on', 'true', 'yes', 'enabled']);
const FALSE = new Set(['0', 'off', 'false', 'no', 'disabled']);
const SIZE_SUFFIX: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** `leaseSeconds` → `lease_seconds`: camelCase option names are accepted as well. */
function snake(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

class SectionReader {
  private readonly used = new Set<string>();
  private readonly opts = new Map<string, { key: string; value: string | string[] }>();
  readonly path: string;

  constructor(
    readonly section: UciSection,
    pkgName: string,
    private readonly issues: string[],
  ) {
    this.path = sectionPath(pkgName, section);
    for (const [key, value] of section.options) {
      const k = snake(key);
      if (this.opts.has(k)) issues.push(`${this.path}.${key}: given twice (as "${this.opts.get(k)!.key}" too)`);
      this.opts.set(k, { key, value });
    }
  }

  private p(key: string): string {
    return `${this.path}.${this.opts.get(key)?.key ?? key}`;
  }

  has(key: string): boolean {
    return this.opts.has(key);
  }

  /** a single value; a list given where one value is expected is an issue */
  str(key: string): string | undefined {
    const o = this.opts.get(key);
    if (!o) return undefined;
    this.used.add(key);
    if (Array.isArray(o.value)) {
      if (o.value.length === 1) return o.value[0];
      this.issues.push(`${this.p(key)}: expected one value (option), got a list of ${o.value.length}`);
      return undefined;
    }
    return o.value;
  }

  /** a list; a plain option counts as a one-item list */
  list(key: string): string[] | undefined {
    const o = this.opts.get(key);
    if (!o) return undefined;
    this.used.add(key);
    return Array.isArray(o.value) ? [...o.value] : [o.value];
  }

  int(key: string): number | undefined {
    const v = this.str(key);
    if (v === undefined) return undefined;
    const t = v.trim();
    if (/^-?\d+$/.test(t) && Number.isSafeInteger(Number(t))) return Number(t);
    this.issues.push(`${this.p(key)}: expected an integer, got ${JSON.stringify(v)}`);
    return undefined;
  }

  /** bytes: an integer, optionally with a binary suffix K, M, G or T (`4G`) */
  size(key: string): number | undefined {
    const v = this.str(key);
    if (v === undefined) return undefined;
    const m = /^(\d+)\s*([kmgt])?i?b?$/i.exec(v.trim());
    const n = m ? Number(m[1]) * (m[2] ? SIZE_SUFFIX[m[2].toLowerCase()]! : 1) : NaN;
    if (m && Number.isSafeInteger(n)) return n;
    this.issues.push(`${this.p(key)}: expected a size in bytes (e.g. 4000000000 or 4G), got ${JSON.stringify(v)}`);
    return undefined;
  }

  bool(key: string): boolean | undefined {
    const v = this.str(key);
    if (v === undefined) return undefined;
    const t = v.trim().toLowerCase();
    if (TRUE.has(t)) return true;
    if (FALSE.has(t)) return false;
    this.issues.push(`${this.p(key)}: expected a boolean (1/0, on/off, true/false, yes/no), got ${JSON.stringify(v)}`);
    return undefined;
  }

  /** `list key 'name=value'` (or `name:value`) items → a record */
  pairs(key: string, seps: string[], what: string): Record<string, string> | undefined {
    const items = this.list(key);
    if (!items) return undefined;
    const out: Record<string, string> = {};
    for (const item of items) {
      const at = Math.min(...seps.map((s) => item.indexOf(s)).filter((x) => x > 0));
      if (!Number.isFinite(at)) {
        this.issues.push(`${this.p(key)}: expected ${what}, got ${JSON.stringify(item)}`);
        continue;
      }
      out[item.slice(0, at).trim()] = item.slice(at + 1).trim();
    }
    return out;
  }

  issue(key: string, msg: string): void {
    this.issues.push(`${this.p(key)}: ${msg}`);
  }

  /** reports every option that no field read */
  finish(known: readonly string[]): void {
    for (const [k, o] of this.opts) {
      if (this.used.has(k)) continue;
      this.issues.push(
        `${this.path}.${o.key}: unknown option for a "${this.section.type}" section (expected one of ${known.join(', ')})`,
      );
    }
  }
}

type Obj = Record<string, unknown>;

function put(obj: Obj, key: string, v: unknown): void {
  if (v !== undefined) obj[key] = v;
}

/** `list range` (two addresses, or one "a-b") or range_start/range_end, as dhcp and dhcp6 take them. */
function rangeOf(r: SectionReader): string[] | undefined {
  const start = r.str('range_start');
  const end = r.str('range_end');
  const list = r.list('range');
  if (list !== undefined) {
    if (start !== undefined || end !== undefined) r.issue('range', 'give either "list range" or range_start/range_end, not both');
    else if (list.length === 1 && list[0]!.includes('-')) return list[0]!.split('-').map((x) => x.trim());
    else if (list.length !== 2) r.issue('range', `expected two addresses (first, last), got ${list.length}`);
    else return list;
  } else if (start !== undefined || end !== undefined) {
    if (start === undefined) r.issue('range_start', 'missing (range_end is set)');
    else if (end === undefined) r.issue('range_end', 'missing (range_start is set)');
    else return [start, end];
  }
  return undefined;
}

/** Option names per section type (snake_case; camelCase is accepted too). */
/** Extra DHCP options (dhcp.options / a profile's dhcpOptions) as UCI options of dhcp and profile sections. */
const DHCP_OPTION_KEYS = ['ntp', 'domain', 'mtu', 'search', 'classless_route', 'vendor_encapsulated'] as const;

/** `list ntp`, `option domain`, `option mtu`, `list search`, `list classless_route '10.0.0.0/8 10.99.0.254'`, `option vendor_encapsulated`. */
function readDhcpOptions(r: SectionReader): Obj | undefined {
  const o: Obj = {};
  put(o, 'ntp', r.list('ntp'));
  put(o, 'domain', r.str('domain'));
  put(o, 'mtu', r.int('mtu'));
  put(o, 'searchList', r.list('search'));
  const routes = r.list('classless_route');
  if (routes !== undefined)
    o.classlessRoutes = routes.map((x) => {
      const [network, gateway, ...rest] = x.trim().split(/\s+/);
      if (!network || !gateway || rest.length) r.issue('classless_route', `expected "NETWORK/PREFIX GATEWAY" (10.0.0.0/8 10.99.0.254), got ${JSON.stringify(x)}`);
      return { network, gateway };
    });
  put(o, 'vendorEncapsulated', r.str('vendor_encapsulated'));
  return Object.keys(o).length ? o : undefined;
}

export const UCI_SCHEMA = {
  agent: ['enabled', 'agent_id', 'state_dir', 'log_level', 'log_levels'],
  lan: ['interface', 'address', 'prefix', 'address6', 'prefix6'],
  dhcp6: ['mode', 'port', 'range_start', 'range_end', 'range', 'lease_seconds', 'preference'],
  dhcp: [
    'mode', 'port', 'proxy_port', 'range_start', 'range_end', 'range', 'lease_seconds', 'router', 'dns',
    'ipxe_no_proxy_dhcp', 'netboot_once', 'known_clients_only', ...DHCP_OPTION_KEYS,
  ],
  relay_subnet: ['network', 'range_start', 'range_end', 'router', 'dns'],
  match: ['profile', 'mac', 'vendor_class', 'user_class', 'arch', 'uuid'],
  static: ['mac', 'ip'],
  host: ['mac', 'ip'],
  tftp: [
    'enabled', 'port', 'max_blksize', 'max_windowsize', 'timeout', 'retries', 'max_transfers',
    'max_transfers_per_client',
  ],
  http: ['port'],
  upstream: ['url', 'header', 'timeout_ms', 'ca_file'],
  cache: ['dir', 'max_bytes', 'ttl_seconds', 'negative_ttl_seconds'],
  boot: ['default_profile'],
  loader: ['arch', 'path'],
  profile: ['name', 'kernel', 'initrd', 'cmdline', 'script', 'sha256', ...DHCP_OPTION_KEYS, 'menu_prompt', 'menu_timeout', 'menu_item'],
  assign: ['mac', 'profile'],
  mqtt: [
    'enabled', 'url', 'username', 'password', 'prefix', 'ca_file', 'journal_max_events', 'home_assistant',
    'commands',
  ],
  control: ['socket'],
} as const;

type SectionType = keyof typeof UCI_SCHEMA;
const SINGLETONS = new Set<SectionType>(['agent', 'lan', 'dhcp', 'dhcp6', 'tftp', 'http', 'upstream', 'cache', 'boot', 'mqtt', 'control']);

/**
 * Maps the text of /etc/config/bootrelay to the contract's config object (not yet
 * validated: pass `config` to parseConfig). `issues` lists every UCI-level problem.
 */
export function uciToConfigObject(text: string, pkgName = 'bootrelay'): { config: unknown; issues: string[] } {
  const { pkg, issues } = parseUci(text, pkgName);
  const cfg: Obj = {};
  const seen = new Map<string, string>();
  const sub = (key: string): Obj => (cfg[key] ??= {}) as Obj;
  const boot = (): Obj => sub('boot');
  const bootMap = (key: string): Obj => ((boot()[key] ??= {}) as Obj);

  for (const s of pkg.sections) {
    const type = s.type as SectionType;
    const known = UCI_SCHEMA[type] as readonly string[] | undefined;
    const sp = sectionPath(pkgName, s);
    if (!known) {
      issues.push(`${sp}: unknown section type "${s.type}" (expected one of ${Object.keys(UCI_SCHEMA).join(', ')})`);
      continue;
    }
    if (SINGLETONS.has(type)) {
      const first = seen.get(type);
      if (first !== undefined) {
        issues.push(`${sp}: only one "${type}" section is allowed (the first is ${first})`);
        continue;
      }
      seen.set(type, sp);
    }
    const r = new SectionReader(s, pkgName, issues);

    switch (type) {
      case 'agent': {
        r.bool('enabled'); // read by the init script only: '0' keeps the service from starting
        put(cfg, 'agentId', r.str('agent_id'));
        put(cfg, 'stateDir', r.str('state_dir'));
        const level = r.str('log_level');
        const levels = r.pairs('log_levels', ['=', ':'], '"component=level"');
        if (level !== undefined || levels !== undefined) {
          const log = sub('log');
          put(log, 'level', level);
          put(log, 'levels', levels);
        }
        break;
      }
      case 'lan': {
        const lan = sub('lan');
        put(lan, 'interface', r.str('interface'));
        put(lan, 'address', r.str('address'));
        put(lan, 'prefix', r.int('prefix'));
        put(lan, 'address6', r.str('address6'));
        put(lan, 'prefix6', r.int('prefix6'));
        break;
      }
      case 'dhcp6': {
        const d = sub('dhcp6');
        put(d, 'mode', r.str('mode'));
        put(d, 'port', r.int('port'));
        const range = rangeOf(r);
        if (range) d.range = range;
        put(d, 'leaseSeconds', r.int('lease_seconds'));
        put(d, 'preference', r.int('preference'));
        break;
      }
      case 'dhcp': {
        const d = sub('dhcp');
        put(d, 'mode', r.str('mode'));
        put(d, 'port', r.int('port'));
        put(d, 'proxyPort', r.int('proxy_port'));
        const range = rangeOf(r);
        if (range) d.range = range;
        put(d, 'leaseSeconds', r.int('lease_seconds'));
        put(d, 'router', r.str('router'));
        put(d, 'dns', r.list('dns'));
        put(d, 'ipxeNoProxyDhcp', r.bool('ipxe_no_proxy_dhcp'));
        put(d, 'netbootOnce', r.bool('netboot_once'));
        put(d, 'knownClientsOnly', r.bool('known_clients_only'));
        put(d, 'options', readDhcpOptions(r));
        break;
      }
      case 'relay_subnet': {
        const n: Obj = {};
        put(n, 'network', r.str('network'));
        const start = r.str('range_start');
        const end = r.str('range_end');
        if (start === undefined || end === undefined) issues.push(`${sp}: a relay subnet needs range_start and range_end`);
        else n.range = [start, end];
        put(n, 'router', r.str('router'));
        put(n, 'dns', r.list('dns'));
        ((sub('dhcp').relaySubnets ??= []) as Obj[]).push(n);
        break;
      }
      case 'match': {
        const m: Obj = {};
        put(m, 'profile', r.str('profile'));
        put(m, 'mac', r.str('mac'));
        put(m, 'vendorClass', r.str('vendor_class'));
        put(m, 'userClass', r.str('user_class'));
        put(m, 'arch', r.int('arch'));
        put(m, 'uuid', r.str('uuid'));
        ((boot().match ??= []) as Obj[]).push(m);
        break;
      }
      case 'static':
      case 'host': {
        const mac = r.str('mac');
        const ip = r.str('ip');
        if (mac === undefined) issues.push(`${sp}.mac: missing (a static lease needs mac and ip)`);
        else if (ip === undefined) issues.push(`${sp}.ip: missing (a static lease needs mac and ip)`);
        else {
          const st = ((sub('dhcp').static ??= {}) as Obj);
          const key = mac.toLowerCase();
          if (key in st) issues.push(`${sp}.mac: ${mac} already has a static lease`);
          st[key] = ip;
        }
        break;
      }
      case 'tftp': {
        const enabled = r.bool('enabled');
        const t: Obj = {};
        put(t, 'port', r.int('port'));
        put(t, 'maxBlksize', r.int('max_blksize'));
        put(t, 'maxWindowsize', r.int('max_windowsize'));
        put(t, 'timeout', r.int('timeout'));
        put(t, 'retries', r.int('retries'));
        put(t, 'maxTransfers', r.int('max_transfers'));
        put(t, 'maxTransfersPerClient', r.int('max_transfers_per_client'));
        cfg.tftp = enabled === false ? false : t;
        break;
      }
      case 'http': {
        const h = sub('http');
        put(h, 'port', r.int('port'));
        break;
      }
      case 'upstream': {
        const u = sub('upstream');
        put(u, 'url', r.str('url'));
        put(u, 'headers', r.pairs('header', [':'], '"Name: value"'));
        put(u, 'timeoutMs', r.int('timeout_ms'));
        put(u, 'caFile', r.str('ca_file'));
        break;
      }
      case 'cache': {
        const c = sub('cache');
        put(c, 'dir', r.str('dir'));
        put(c, 'maxBytes', r.size('max_bytes'));
        put(c, 'ttlSeconds', r.int('ttl_seconds'));
        put(c, 'negativeTtlSeconds', r.int('negative_ttl_seconds'));
        break;
      }
      case 'boot':
        put(boot(), 'defaultProfile', r.str('default_profile'));
        break;
      case 'loader': {
        const arch = r.str('arch');
        const paths = r.list('path');
        if (arch === undefined) issues.push(`${sp}.arch: missing (e.g. bios, uefi-x64, uefi-arm64)`);
        else if (paths === undefined || paths.length === 0) issues.push(`${sp}.path: missing (list path 'ipxe/undionly.kpxe')`);
        else {
          const loaders = bootMap('loaders');
          if (arch in loaders) issues.push(`${sp}.arch: a loader for "${arch}" is already configured`);
          loaders[arch] = paths.length === 1 ? paths[0] : paths;
        }
        break;
      }
      case 'profile': {
        const name = r.str('name') ?? s.name;
        const p: Obj = {};
        put(p, 'kernel', r.str('kernel'));
        put(p, 'initrd', r.list('initrd'));
        put(p, 'cmdline', r.str('cmdline'));
        put(p, 'script', r.str('script'));
        put(p, 'sha256', r.pairs('sha256', ['='], '"path=hex"'));
        put(p, 'dhcpOptions', readDhcpOptions(r));
        // list menu_item 'LOADER LABEL…' ('local' for the local disk): a PXE boot menu for BIOS ROMs
        const items = r.list('menu_item');
        const prompt = r.str('menu_prompt');
        const timeout = r.int('menu_timeout');
        if (items !== undefined) {
          const menu: Obj = { items: items.map((x) => ({ loader: x.trim().split(/\s+/)[0], label: x.trim().replace(/^\S+\s*/, '') })) };
          put(menu, 'prompt', prompt);
          put(menu, 'timeout', timeout);
          p.pxeMenu = menu;
        } else if (prompt !== undefined || timeout !== undefined) r.issue(prompt !== undefined ? 'menu_prompt' : 'menu_timeout', 'a menu needs list menu_item entries');
        if (name === undefined) {
          issues.push(`${sp}: a profile needs a name (config profile 'NAME' or option name)`);
          break;
        }
        const profiles = bootMap('profiles');
        if (name in profiles) issues.push(`${sp}: profile "${name}" is defined twice`);
        profiles[name] = p;
        break;
      }
      case 'assign': {
        const mac = r.str('mac');
        const profile = r.str('profile');
        if (mac === undefined) issues.push(`${sp}.mac: missing (an assignment needs mac and profile)`);
        else if (profile === undefined) issues.push(`${sp}.profile: missing (an assignment needs mac and profile)`);
        else {
          const assign = bootMap('assign');
          const key = mac.toLowerCase();
          if (key in assign) issues.push(`${sp}.mac: ${mac} is already assigned`);
          assign[key] = profile;
        }
        break;
      }
      case 'mqtt': {
        const enabled = r.bool('enabled');
        const m: Obj = {};
        put(m, 'url', r.str('url'));
        put(m, 'username', r.str('username'));
        put(m, 'password', r.str('password'));
        put(m, 'prefix', r.str('prefix'));
        put(m, 'caFile', r.str('ca_file'));
        put(m, 'journalMaxEvents', r.int('journal_max_events'));
        put(m, 'homeAssistant', r.bool('home_assistant'));
        put(m, 'commands', r.bool('commands'));
        if (enabled !== false) cfg.mqtt = m;
        break;
      }
      case 'control':
        put(sub('control'), 'socket', r.str('socket'));
        break;
    }
    r.finish(known);
  }
  return { config: cfg, issues };
}
