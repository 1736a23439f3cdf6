/**
 * UCI (OpenWrt's Unified Configuration Interface) for bootrelay.
 *
 * parseUci(text) reads the `/etc/config/<package>` syntax with the same results as libuci
 * (uci 2025.12.02~66127cd7, OpenWrt 25.12; its file parser is unchanged since 24.10), checked
 * statement by statement against the real `uci` by test/integration/uci-libuci.test.ts. libuci
 * reads a file line by line into one buffer and cuts words out of it in place; several of its
 * rules only make sense in that light, so the reader below keeps the same model:
 *   - statements `package NAME`, `config TYPE ['NAME']`, `option NAME 'VALUE'`, `list NAME 'VALUE'`
 *     (also abbreviated `p`, `c`, `o`, `l`); the command word ends at a blank (space or tab) only,
 *     so `config` directly followed by the newline is an "invalid command";
 *   - a word may join parts: `'single'` (no escapes), `"double"` (a backslash keeps the next
 *     character) and bare text (backslash likewise); quotes may span lines (the newlines are
 *     part of the value); a backslash at the end of a line joins the next line to the word,
 *     so a backslash-newline *between* words ends the word being read and the next line's
 *     text becomes one argument too many;
 *   - `#` outside quotes ends the line;
 *   - `;` separates statements where an argument starts (`option a 1 ; option b 2`) or right
 *     after a quoted word (`option a '1'; option b 2`); right after a bare word (`config t;`,
 *     `option a 1; option b 2`) it ends the line: the rest is ignored;
 *   - `option NAME ''` and a valueless `option NAME` set nothing (an earlier value stays);
 *     `list NAME ''` adds an empty item; `option` after `list` replaces the list, `list` after
 *     `option` turns the value into the list's first item;
 *   - a section named twice is one section; named twice with two types it is an error
 *     ("section of different type overwrites prior section with same name"), which
 *     non-strict parsing (`uci -S`, what /lib/config/uci.sh's config_load uses) accepts by
 *     giving the section the second type;
 *   - names of sections and options are [A-Za-z0-9_]; a section type is any printable ASCII.
 * Errors carry libuci's own reason text. Strict parsing (the `uci` command's default) rejects
 * the file at the first error; non-strict parsing skips the rest of the offending line and goes
 * on, keeping what came before the error on that line (an option after a rejected `config`
 * line lands in the previous section, as it does for config_load). Line numbers are the real
 * ones; libuci says one less when the error is on a last line without a newline.
 *
 * uciToConfigObject(text) maps /etc/config/bootrelay onto the contract's JSON config
 * object (shared/CONTRACT.md). It only translates: the result still goes through the
 * agent's config validator (agent/config/load.ts), which fills defaults and checks
 * ranges. Problems found at the UCI level (syntax, unknown section types or options,
 * a number that is not a number) are issue strings naming the UCI path, e.g.
 *   bootrelay.@dhcp[0].lease_seconds: expected an integer, got "abc"
 *
 * The UCI form of every field is documented in image/README.md and in
 * /usr/share/bootrelay/config.txt on the router (not in /etc/config/bootrelay: `uci commit`
 * rewrites that file and drops every comment).
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

/** One parse error as libuci reports it. */
export interface UciSyntaxError {
  /** libuci's reason, e.g. "too many arguments" */
  reason: string;
  /** the line the error was found on (1-based) */
  line: number;
  /** the line number libuci prints (one less on a last line without a newline) */
  uciLine: number;
  /** what was found, for the message (not part of libuci's text) */
  detail?: string;
}

export interface UciParseResult {
  /**
   * The sections libuci loads. Strict: what was read before the first error (libuci itself
   * loads nothing then). Non-strict: everything `uci -S` loads.
   */
  pkg: UciPackage;
  /** one line per error: `bootrelay: line 3: parse error (too many arguments): "x" (quote …)` */
  issues: string[];
  errors: UciSyntaxError[];
  /**
   * Text libuci accepts but silently ignores, as warnings: what follows a `;` written right
   * after a bare word, and options set to nothing (`option a ''`, `option a`).
   */
  notes: string[];
}

class UciError extends Error {
  constructor(
    reason: string,
    readonly detail?: string,
  ) {
    super(reason);
  }
}

const BLANK = new Set([' ', '\t']);
const SPACE = new Set([' ', '\t', '\n', '\v', '\f', '\r']);
const END = '\0';

function isAlnum(c: string): boolean {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/** Section and option names: [A-Za-z0-9_]; package names also allow `-`. */
function validName(s: string, pkg = false): boolean {
  if (!s) return false;
  for (const c of s) if (!isAlnum(c) && c !== '_' && !(pkg && c === '-')) return false;
  return true;
}

/** Section types: any printable ASCII character but the blank. */
function validType(s: string): boolean {
  if (!s) return false;
  for (const c of s) {
    const x = c.codePointAt(0)!;
    if (!isAlnum(c) && c !== '_' && (x < 33 || x > 126)) return false;
  }
  return true;
}

/**
 * The text as libuci sees it: physical lines read one at a time into a buffer of characters
 * in which the parser writes END marks as it cuts words out. `fill(at)` reads the next line
 * into the buffer at `at` (dropping what was there from `at` on).
 */
class LineBuffer {
  private readonly lines: string[];
  private next = 0;
  buf: string[] = [];
  /** how many characters the last read left in the buffer */
  filled = 0;
  /** lines read so far (the real line number of the last one read) */
  line = 0;
  /** libuci's count: lines read that ended with a newline */
  uciLine = 0;

  constructor(text: string) {
    this.lines = text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
  }

  more(): boolean {
    return this.next < this.lines.length;
  }

  fill(at: number): void {
    this.buf.length = at;
    while (this.next < this.lines.length) {
      // a NUL in a line ends what is read of it (fgets + strlen)
      const raw = this.lines[this.next++]!;
      this.line++;
      const nul = raw.indexOf('\0');
      const part = nul < 0 ? raw : raw.slice(0, nul);
      if (!part) return;
      for (const c of part) this.buf.push(c);
      this.filled = this.buf.length;
      if (part.endsWith('\n')) {
        this.uciLine++;
        return;
      }
    }
  }

  ch(i: number): string {
    return this.buf[i] ?? END;
  }

  /** the END-terminated string starting at i */
  str(i: number): string {
    let s = '';
    for (let c = this.ch(i); c !== END; c = this.ch(++i)) s += c;
    return s;
  }
}

interface Section {
  type: string;
  name?: string;
  line: number;
  options: Map<string, string | string[]>;
  optionLines: Map<string, number>;
}

/** Reads UCI text into sections, the way libuci's file parser does (see the top of this file). */
class UciReader {
  private readonly b: LineBuffer;
  private pos = 0;
  private cur: Section | undefined;
  readonly sections: Section[] = [];
  readonly errors: UciSyntaxError[] = [];
  readonly notes: { line: number; text: string }[] = [];
  pkgName?: string;

  constructor(
    text: string,
    private readonly strict: boolean,
  ) {
    this.b = new LineBuffer(text);
  }

  run(): void {
    while (this.b.more()) {
      this.pos = 0;
      this.b.fill(0);
      try {
        if (this.b.ch(0) !== END) this.statements();
      } catch (e) {
        if (!(e instanceof UciError)) throw e;
        const err: UciSyntaxError = { reason: e.message, line: this.b.line, uciLine: this.b.uciLine };
        if (e.detail) err.detail = e.detail;
        this.errors.push(err);
        if (this.strict) return;
      }
    }
  }

  private fail(reason: string, detail?: string): never {
    throw new UciError(reason, detail);
  }

  private skipSpace(): void {
    while (this.b.ch(this.pos) !== END && SPACE.has(this.b.ch(this.pos))) this.pos++;
  }

  private advance(n: number, reason: string): void {
    if (this.pos + n > this.b.filled) this.fail(reason);
    this.pos += n;
  }

  /** The command word at pos: up to a blank, which is overwritten with END. */
  private word(): string | undefined {
    const { b } = this;
    let i = this.pos;
    while (BLANK.has(b.ch(i))) i++;
    if (b.ch(i) === END) return undefined;
    const start = i;
    while (b.ch(i) !== END && !BLANK.has(b.ch(i))) i++;
    if (b.ch(i) !== END) b.buf[i] = END;
    return b.buf.slice(start, i).join('');
  }

  /** Every statement on the line in the buffer (more than one when `;` separates them). */
  private statements(): void {
    this.skipSpace();
    for (;;) {
      const w = this.word();
      if (w === undefined || w[0] === '#') return;
      const is = (full: string): boolean => w === full || w === full[0];
      // the command word plus the blanks before it and the END after it
      const skip = this.b.str(this.pos).length + 1;
      if (is('package')) {
        this.advance(skip, 'package without name');
        this.arg(true, 'package');
        this.endOfStatement();
      } else if (is('config')) this.config(skip);
      else if (is('option')) this.option(skip, false);
      else if (is('list')) this.option(skip, true);
      else this.fail('invalid command', `${JSON.stringify(w)} (expected config, option, list or package)`);
    }
  }

  /** A backslash at pos: true when the next character is to be taken; false after a line join. */
  private backslash(): boolean {
    const { b } = this;
    this.pos++;
    const c = b.ch(this.pos);
    if (c === END || c === '\n' || (c === '\r' && b.ch(this.pos + 1) === '\n' && b.ch(this.pos + 2) === END)) {
      b.fill(this.pos);
      return false;
    }
    return true;
  }

  /** Reads one word into the buffer at `out` (which trails pos); returns where `out` ended. */
  private readWord(out: number): number {
    const { b } = this;
    const put = (): void => {
      b.buf[out++] = b.ch(this.pos++);
    };
    let atSemicolon = false;
    scan: do {
      const c = b.ch(this.pos);
      switch (c) {
        case "'":
        case '"': {
          const from = b.line;
          this.pos++;
          for (;;) {
            const d = b.ch(this.pos);
            if (d === c) {
              this.pos++;
              break;
            }
            if (d === END) {
              // the quote goes on on the next line
              b.fill(this.pos);
              if (b.ch(this.pos) === END) this.fail(`EOF with unterminated ${c}`, `the quote opened on line ${from}`);
            } else if (d === '\\' && c === '"') {
              if (this.backslash()) put();
            } else put();
          }
          break;
        }
        case '#':
          b.buf[this.pos] = END;
          break scan;
        case END:
          break scan;
        case ';':
          atSemicolon = true;
          break scan;
        case '\\':
          if (this.backslash()) put();
          break;
        default:
          put();
      }
    } while (b.ch(this.pos) !== END && !SPACE.has(b.ch(this.pos)));
    // the character that ended the word (a blank or newline) is skipped; a `;` stays, and
    // when the END written below lands on it, it ends the line
    if (b.ch(this.pos) !== END && !atSemicolon) this.pos++;
    if (atSemicolon && out === this.pos) {
      const rest = b.str(this.pos + 1).trim();
      if (rest && !rest.startsWith('#')) {
        this.notes.push({ line: b.line, text: `${JSON.stringify(rest)} after ";" is ignored (uci ends the line at a ";" right after an unquoted word: put a blank before it)` });
      }
    }
    b.buf[out] = END;
    return out;
  }

  /** The next argument ('' when there is none). */
  private arg(required: boolean, check?: 'name' | 'package'): string {
    const { b } = this;
    this.skipSpace();
    const at = this.pos;
    if (b.ch(this.pos) === ';') {
      b.buf[this.pos] = END;
      this.pos++;
    } else this.readWord(at);
    const s = b.str(at);
    if (!s) {
      if (required) this.fail('insufficient arguments');
      return s;
    }
    if (check && !validName(s, check === 'package')) {
      this.fail('invalid character in name field', `${JSON.stringify(s)} (letters, digits and _ only)`);
    }
    return s;
  }

  private endOfStatement(): void {
    this.skipSpace();
    const extra = this.arg(false);
    if (extra && this.strict) this.fail('too many arguments', `${JSON.stringify(extra)} (quote a value that has blanks)`);
  }

  private config(skip: number): void {
    this.advance(skip, 'config without name');
    const type = this.arg(true);
    if (!validType(type)) this.fail('invalid character in type field', `${JSON.stringify(type)} (printable ASCII only)`);
    const name = this.arg(false, 'name');
    this.endOfStatement();
    if (!name) {
      this.cur = { type, line: this.b.line, options: new Map(), optionLines: new Map() };
      this.sections.push(this.cur);
      return;
    }
    const s = this.sections.find((x) => x.name === name);
    if (s) {
      if (s.type !== type) {
        if (this.strict) {
          this.fail(
            'section of different type overwrites prior section with same name',
            `"${name}" is a "${s.type}" section, line ${s.line}`,
          );
        }
        s.type = type;
      }
      this.cur = s;
      return;
    }
    this.cur = { type, name, line: this.b.line, options: new Map(), optionLines: new Map() };
    this.sections.push(this.cur);
  }

  private option(skip: number, list: boolean): void {
    const s = this.cur;
    if (!s) this.fail('option/list command found before the first section');
    this.advance(skip, 'option without name');
    const name = this.arg(true, 'name');
    const value = this.arg(false);
    this.endOfStatement();
    const prev = s.options.get(name);
    if (!list) {
      if (!value) {
        // libuci: setting an option to nothing does nothing
        this.notes.push({ line: this.b.line, text: `option ${name} has no value and is ignored (delete the line, or write list ${name} '' for an empty item)` });
        return;
      }
      s.options.set(name, value);
    } else if (Array.isArray(prev)) prev.push(value);
    else s.options.set(name, prev === undefined ? [value] : [prev, value]);
    s.optionLines.set(name, this.b.line);
  }
}

/**
 * Parses UCI text as libuci does: strictly (the `uci` command's default: the first error
 * rejects the file) or not (`uci -S`, config_load: each error skips the rest of its line).
 */
export function parseUci(text: string, pkgName = 'bootrelay', strict = true): UciParseResult {
  const r = new UciReader(text, strict);
  r.run();
  const counts = new Map<string, number>();
  const sections: UciSection[] = r.sections.map((s) => {
    const index = counts.get(s.type) ?? 0;
    counts.set(s.type, index + 1);
    return { ...s, index };
  });
  const issues = r.errors.map((e) => `${pkgName}: line ${e.line}: parse error (${e.reason})${e.detail ? `: ${e.detail}` : ''}`);
  const notes = r.notes.map((n) => `${pkgName}: line ${n.line}: ${n.text}`);
  return { pkg: { sections }, issues, errors: r.errors, notes };
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
  loader: ['arch', 'path', 'shim', 'grub', 'fetch'],
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
export function uciToConfigObject(text: string, pkgName = 'bootrelay'): { config: unknown; issues: string[]; warnings: string[] } {
  // a syntax error rejects the file, as `uci` does; the sections config_load would still see
  // (non-strict parsing) are mapped too, for the rest of the report
  const strict = parseUci(text, pkgName, true);
  const issues = strict.issues;
  const pkg = issues.length ? parseUci(text, pkgName, false).pkg : strict.pkg;
  const warnings = issues.length ? [] : strict.notes;
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
        // a Secure Boot chain: option shim + option grub (+ option fetch), after any paths (fallbacks)
        const shim = r.str('shim');
        const grub = r.str('grub');
        const fetch = r.str('fetch');
        const chain: Obj | undefined = shim !== undefined || grub !== undefined || fetch !== undefined ? {} : undefined;
        if (chain) {
          put(chain, 'shim', shim);
          put(chain, 'grub', grub);
          put(chain, 'fetch', fetch);
        }
        const entries: unknown[] = [...(paths ?? []), ...(chain ? [chain] : [])];
        if (arch === undefined) issues.push(`${sp}.arch: missing (e.g. bios, uefi-x64, uefi-arm64)`);
        else if (entries.length === 0) issues.push(`${sp}.path: missing (list path 'ipxe/undionly.kpxe', or option shim + option grub for a Secure Boot chain)`);
        else {
          const loaders = bootMap('loaders');
          if (arch in loaders) issues.push(`${sp}.arch: a loader for "${arch}" is already configured`);
          loaders[arch] = entries.length === 1 ? entries[0] : entries;
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
  return { config: cfg, issues, warnings };
}
