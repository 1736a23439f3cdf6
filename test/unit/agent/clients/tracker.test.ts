import { describe, expect, it } from 'vitest';
import { ClientThrottle } from '../../../../agent/clients/throttle';
import { cleanFile, ClientTracker, transferFailure, type ClientState } from '../../../../agent/clients/tracker';
import type { BootConfig } from '../../../../agent/config/types';
import { BootPlan } from '../../../../relay/boot/plan';
import { makeEvent, type HttpFailure, type RelayEventType, type TftpFailure } from '../../../../proto/events';
import { scripted, type EventFields } from '../../../helpers/events';

const BOOT: BootConfig = {
  loaders: { bios: ['ipxe/undionly.kpxe'], 'uefi-x64': ['ipxe/snponly.efi', 'ipxe/ipxe.efi'] },
  defaultProfile: 'debian',
  profiles: {
    debian: { kernel: 'debian/vmlinuz', initrd: ['debian/initrd.gz'], cmdline: 'console=ttyS0' },
    two: { kernel: 'alp/vmlinuz', initrd: ['alp/initramfs', 'alp/modloop'] },
    bare: { kernel: 'bare/vmlinuz' },
  },
  assign: { '52:54:00:00:00:02': 'two', '52:54:00:00:00:03': 'bare' },
};

const MAC = '52:54:00:99:0b:01';

function setup(opts: Partial<ConstructorParameters<typeof ClientTracker>[0]> = {}) {
  let now = Date.parse('2026-01-01T00:00:00Z');
  const emitted: ClientState[] = [];
  const failures: object[] = [];
  const plan = new BootPlan({ boot: BOOT });
  const t = new ClientTracker({ plan, now: () => now, ...opts });
  // subscribers see updates through the shared throttle (250 ms, as relayctl watch and the dashboard)
  const feed = new ClientThrottle({ intervalMs: 250, now: () => now, timers: false, send: (s) => emitted.push(s) });
  t.on('client', (u) => {
    feed.offer(u);
    if (u.failed) failures.push(u.failed);
  });
  const ev = <T extends RelayEventType>(type: T, f: EventFields<T> = {}) => t.apply(scripted(type, { mac: MAC, ...f }));
  return {
    t,
    plan,
    emitted,
    failures,
    ev,
    advance: (ms: number) => {
      now += ms;
      const changed = t.tick(now);
      feed.flush(now);
      return changed;
    },
    phases: () => [...new Set(emitted.filter((s) => s.mac === (emitted.at(-1)?.mac ?? MAC)).map((s) => s.phase))],
  };
}

describe('cleanFile', () => {
  it('turns URLs and /files/ paths into boot paths', () => {
    expect(cleanFile('http://10.99.0.1/files/ipxe/ipxe.efi')).toBe('ipxe/ipxe.efi');
    expect(cleanFile('http://10.99.0.1:8080/boot.ipxe?mac=52:54:00:00:00:01')).toBe('/boot.ipxe');
    expect(cleanFile('/files/debian/vmlinuz')).toBe('debian/vmlinuz');
    expect(cleanFile('/ipxe/undionly.kpxe')).toBe('ipxe/undionly.kpxe');
    expect(cleanFile('boot.ipxe')).toBe('/boot.ipxe');
    expect(cleanFile(undefined)).toBeUndefined();
  });
});

describe('ClientTracker', () => {
  it('follows a SeaBIOS iPXE ROM boot: dhcp, bound, ipxe, kernel, initrd, handoff, booted', () => {
    const { ev, emitted, t, advance } = setup();
    ev('dhcp.discover', { firmware: 'ipxe', arch: 'bios' });
    ev('dhcp.offer', { firmware: 'ipxe', arch: 'bios', file: 'http://10.99.0.1/boot.ipxe?mac=' + MAC });
    ev('dhcp.request', { firmware: 'ipxe', arch: 'bios' });
    ev('dhcp.ack', { firmware: 'ipxe', arch: 'bios', ip: '10.99.0.100', file: 'http://10.99.0.1/boot.ipxe?mac=' + MAC });
    expect(t.get(MAC)!.phase).toBe('bound');
    advance(300);
    ev('http.start', { file: '/boot.ipxe', ip: '10.99.0.100' });
    ev('http.done', { file: '/boot.ipxe', bytes: 200 });
    ev('http.start', { file: 'debian/vmlinuz', totalBytes: 8_000_000 });
    advance(1000);
    ev('http.progress', { file: 'debian/vmlinuz', bytes: 4_000_000, totalBytes: 8_000_000 });
    const mid = t.get(MAC)!;
    expect(mid).toMatchObject({ phase: 'kernel', file: 'debian/vmlinuz', bytes: 4_000_000, totalBytes: 8_000_000, etaSeconds: 1, rate: 4_000_000 });
    advance(1000);
    ev('http.done', { file: 'debian/vmlinuz', bytes: 8_000_000 });
    ev('http.start', { file: 'debian/initrd.gz', totalBytes: 1000 });
    ev('http.done', { file: 'debian/initrd.gz', bytes: 1000 });
    expect(t.get(MAC)!.phase).toBe('handoff');
    advance(5000);
    ev('client.booted', {});
    const s = t.get(MAC)!;
    expect(s).toMatchObject({ phase: 'booted', ip: '10.99.0.100', arch: 'bios', firmware: 'ipxe', profile: 'debian', error: null });
    expect([...new Set(emitted.map((e) => e.phase))]).toEqual(['dhcp', 'bound', 'ipxe', 'kernel', 'initrd', 'handoff', 'booted']);
    expect(Object.keys(s.phases)).toEqual(['dhcp', 'bound', 'ipxe', 'kernel', 'initrd', 'handoff', 'booted']);
    expect(Date.parse(s.phases.kernel!.endedAt!) - Date.parse(s.phases.kernel!.startedAt)).toBe(2000);
    expect(s.phases.dhcp!.endedAt).toBeDefined();
  });

  it('restores saved client states (a restart) and goes on from them; skips malformed entries', () => {
    const a = setup();
    a.ev('dhcp.discover', { firmware: 'ipxe', arch: 'bios' });
    a.ev('dhcp.ack', { firmware: 'ipxe', arch: 'bios', ip: '10.99.1.100', file: '/boot.ipxe', role: 'script' });
    a.ev('http.start', { file: 'debian/vmlinuz', ip: '10.99.1.100', totalBytes: 100 });
    const saved = JSON.parse(JSON.stringify(a.t.list()));
    const b = setup();
    expect(b.t.restore([...saved, null, { mac: 'nope' }, { mac: '52:54:00:00:00:09', phase: 'flying', startedAt: 'x', updatedAt: 'x' }])).toBe(1);
    expect(b.t.get(MAC)).toMatchObject({ phase: 'kernel', ip: '10.99.1.100', file: 'debian/vmlinuz' });
    expect(b.t.list()).toHaveLength(1);
    b.ev('client.booted', { ip: '10.99.1.100' });
    expect(b.t.get(MAC)?.phase).toBe('booted');
    expect(b.t.restore('not a list')).toBe(0);
  });

  it('follows an OVMF UEFI PXE boot with a TFTP loader, then iPXE', () => {
    const { ev, t, emitted, advance } = setup();
    ev('dhcp.discover', { firmware: 'uefi', arch: 'uefi-x64' });
    ev('dhcp.offer', { firmware: 'uefi', arch: 'uefi-x64', file: 'ipxe/snponly.efi' });
    ev('dhcp.request', { firmware: 'uefi', arch: 'uefi-x64' });
    ev('dhcp.ack', { firmware: 'uefi', arch: 'uefi-x64', ip: '10.99.0.101', file: 'ipxe/snponly.efi' });
    advance(500);
    // the tsize probe: the firmware aborts the first transfer after the OACK
    ev('tftp.start', { file: 'ipxe/snponly.efi', ip: '10.99.0.101', totalBytes: 200_000 });
    ev('tftp.error', { file: 'ipxe/snponly.efi', reason: 'aborted', error: 'client sent ERROR 8: tsize' });
    expect(t.get(MAC)!.phase).toBe('loader');
    // TFTP events may come by IP only
    t.apply(makeEvent({ type: 'tftp.start', ip: '10.99.0.101', file: '/ipxe/snponly.efi', totalBytes: 200_000 }));
    t.apply(makeEvent({ type: 'tftp.progress', ip: '10.99.0.101', file: 'ipxe/snponly.efi', bytes: 100_000 }));
    t.apply(makeEvent({ type: 'tftp.done', ip: '10.99.0.101', file: 'ipxe/snponly.efi', bytes: 200_000 }));
    expect(t.get(MAC)).toMatchObject({ phase: 'loader', bytes: 200_000, totalBytes: 200_000 });
    advance(25_000); // the loader's own DHCP is not bound by the ACK timeout: a request came
    ev('dhcp.discover', { firmware: 'ipxe', arch: 'uefi-x64' });
    expect(t.get(MAC)!.phase).toBe('ipxe');
    ev('dhcp.ack', { firmware: 'ipxe', arch: 'uefi-x64', ip: '10.99.0.101', file: 'http://10.99.0.1/boot.ipxe?mac=' + MAC });
    ev('http.start', { file: '/boot.ipxe?mac=' + MAC });
    ev('http.start', { file: '/files/debian/vmlinuz' });
    ev('http.done', { file: '/files/debian/vmlinuz', bytes: 10 });
    ev('http.start', { file: '/files/debian/initrd.gz' });
    ev('http.done', { file: '/files/debian/initrd.gz', bytes: 10 });
    ev('client.booted', {});
    const s = t.get(MAC)!;
    expect(s.firmware).toBe('uefi');
    expect(s.error).toBeNull();
    expect([...new Set(emitted.map((e) => e.phase))]).toEqual(['dhcp', 'bound', 'loader', 'ipxe', 'kernel', 'initrd', 'handoff', 'booted']);
  });

  it('follows proxyDHCP: the address comes from another server, TFTP is matched by IP', () => {
    const { ev, t, emitted } = setup();
    ev('dhcp.discover', { firmware: 'uefi', arch: 'uefi-x64' });
    ev('proxy.offer', { firmware: 'uefi', arch: 'uefi-x64', file: 'ipxe/snponly.efi', role: 'loader' });
    expect(t.get(MAC)!.phase).toBe('bound');
    ev('dhcp.request', { firmware: 'uefi', arch: 'uefi-x64', ip: '192.168.1.57' });
    ev('proxy.ack', { firmware: 'uefi', arch: 'uefi-x64', file: 'ipxe/snponly.efi', role: 'loader' });
    t.apply(makeEvent({ type: 'tftp.start', ip: '192.168.1.57', file: 'ipxe/snponly.efi', totalBytes: 1000 }));
    t.apply(makeEvent({ type: 'tftp.done', ip: '192.168.1.57', file: 'ipxe/snponly.efi', bytes: 1000 }));
    ev('dhcp.discover', { firmware: 'ipxe', arch: 'uefi-x64' });
    ev('proxy.offer', { firmware: 'ipxe', arch: 'uefi-x64', file: '/boot.ipxe', role: 'script', url: 'http://10.99.0.1/boot.ipxe?mac=' + MAC });
    expect(t.get(MAC)).toMatchObject({ phase: 'ipxe', ip: '192.168.1.57', error: null });
    expect([...new Set(emitted.map((e) => e.phase))]).toEqual(['dhcp', 'bound', 'loader', 'ipxe']);
  });

  it('follows UEFI HTTP Boot: the loader by URL, fetched over HTTP', () => {
    const { ev, t, advance } = setup();
    ev('dhcp.discover', { firmware: 'uefi-http', arch: 'uefi-x64' });
    ev('dhcp.ack', { firmware: 'uefi-http', arch: 'uefi-x64', ip: '10.99.0.110', file: 'ipxe/ipxe.efi', role: 'loader', url: 'http://10.99.0.1/files/ipxe/ipxe.efi' });
    ev('http.start', { file: 'ipxe/ipxe.efi', totalBytes: 1_000_000 });
    expect(t.get(MAC)).toMatchObject({ phase: 'loader', file: 'ipxe/ipxe.efi' });
    // an HTTP URL that is never fetched says so
    ev('dhcp.discover', { firmware: 'uefi-http', arch: 'uefi-x64' });
    ev('dhcp.ack', { firmware: 'uefi-http', arch: 'uefi-x64', file: 'ipxe/ipxe.efi', role: 'loader', url: 'http://10.99.0.1/files/ipxe/ipxe.efi' });
    advance(20_000);
    expect(t.get(MAC)!.error).toBe('no HTTP request for ipxe/ipxe.efi within 20 s of the ACK: the firmware rejected the offer');
  });

  it('reads the TFTP service reasons: not-found fails, a tsize probe or an abort does not', () => {
    const { ev, t } = setup();
    ev('dhcp.discover', { firmware: 'bios', arch: 'bios' });
    ev('tftp.error', { file: 'ipxe/undionly.kpxe', reason: 'aborted', error: 'client sent ERROR 0' });
    ev('tftp.error', { file: 'ipxe/undionly.kpxe', reason: 'aborted', error: 'client sent ERROR 8: tsize' });
    expect(t.get(MAC)!.phase).toBe('dhcp');
    ev('tftp.error', { file: 'ipxe/undionly.kpxe', reason: 'not-found', error: 'upstream http://x/ipxe/undionly.kpxe: 404' });
    expect(t.get(MAC)!.error).toBe('upstream 404 for ipxe/undionly.kpxe');
    ev('dhcp.discover', { firmware: 'bios', arch: 'bios' });
    ev('tftp.start', { file: 'ipxe/undionly.kpxe' });
    ev('tftp.error', { file: 'ipxe/undionly.kpxe', reason: 'timeout', error: 'client silent after 6 retries' });
    expect(t.get(MAC)!.error).toBe('the TFTP transfer of ipxe/undionly.kpxe timed out: client silent after 6 retries');
  });

  it('waits for every initrd before handoff, and hands off after the kernel when there is none', () => {
    const { t } = setup();
    const a = '52:54:00:00:00:02';
    const e = (type: 'http.start' | 'http.done', file: string) => t.apply(makeEvent({ type, mac: a, file }));
    t.apply(makeEvent({ type: 'dhcp.discover', mac: a, firmware: 'ipxe' }));
    e('http.start', 'alp/vmlinuz');
    e('http.done', 'alp/vmlinuz');
    e('http.start', 'alp/initramfs');
    e('http.done', 'alp/initramfs');
    expect(t.get(a)!.phase).toBe('initrd');
    e('http.start', 'alp/modloop');
    e('http.done', 'alp/modloop');
    expect(t.get(a)).toMatchObject({ phase: 'handoff', profile: 'two' });

    const b = '52:54:00:00:00:03';
    t.apply(makeEvent({ type: 'dhcp.discover', mac: b, firmware: 'ipxe' }));
    t.apply(makeEvent({ type: 'http.start', mac: b, file: 'bare/vmlinuz' }));
    t.apply(makeEvent({ type: 'http.done', mac: b, file: 'bare/vmlinuz' }));
    expect(t.get(b)!.phase).toBe('handoff');
  });

  it('fails when no TFTP request follows an ACK that named a loader', () => {
    const { ev, t, advance, failures } = setup();
    ev('dhcp.discover', { firmware: 'uefi', arch: 'uefi-x64' });
    ev('dhcp.ack', { firmware: 'uefi', arch: 'uefi-x64', ip: '10.99.0.101', file: 'ipxe/snponly.efi' });
    expect(advance(19_000)).toEqual([]);
    const changed = advance(1_000);
    expect(changed).toHaveLength(1);
    expect(t.get(MAC)).toMatchObject({ phase: 'failed', failedPhase: 'bound', error: 'no TFTP request within 20 s of the ACK: the firmware rejected the offer' });
    expect(failures).toEqual([expect.objectContaining({ type: 'client.failed', mac: MAC, error: expect.stringContaining('no TFTP request') })]);
    expect(t.explain(MAC).join(' ')).toMatch(/Secure Boot/);
    // the firmware retries: a new boot starts
    ev('dhcp.discover', { firmware: 'uefi', arch: 'uefi-x64' });
    expect(t.get(MAC)).toMatchObject({ phase: 'dhcp', error: null });
  });

  it('fails when iPXE never fetches /boot.ipxe', () => {
    const { ev, t, advance } = setup();
    ev('dhcp.discover', { firmware: 'ipxe', arch: 'bios' });
    ev('dhcp.ack', { firmware: 'ipxe', arch: 'bios', file: 'http://10.99.0.1/boot.ipxe?mac=' + MAC });
    advance(21_000);
    expect(t.get(MAC)!.error).toMatch(/no HTTP request for \/boot\.ipxe within 20 s/);
  });

  it('says which upstream file was missing', () => {
    const { ev, t } = setup();
    ev('dhcp.discover', { firmware: 'ipxe', arch: 'bios' });
    ev('http.start', { file: '/boot.ipxe' });
    ev('http.start', { file: 'debian/vmlinuz' });
    ev('http.error', { file: 'debian/vmlinuz', reason: 'not-found', status: 404, error: 'upstream answered 404' });
    expect(t.get(MAC)).toMatchObject({ phase: 'failed', failedPhase: 'kernel', error: 'upstream 404 for debian/vmlinuz' });
    expect(t.explain(MAC).join('\n')).toMatch(/failed in phase kernel .*: upstream 404 for debian\/vmlinuz/);
  });

  it('reports a TFTP 404 for the loader, but not for files that are no part of the boot', () => {
    const { ev, t } = setup();
    ev('dhcp.discover', { firmware: 'bios', arch: 'bios' });
    ev('tftp.start', { file: 'autoexec.ipxe' });
    ev('tftp.error', { file: 'autoexec.ipxe', reason: 'not-found', error: 'file not found' });
    expect(t.get(MAC)!.phase).toBe('dhcp');
    ev('tftp.start', { file: 'ipxe/undionly.kpxe' });
    ev('tftp.error', { file: 'ipxe/undionly.kpxe', reason: 'not-found', error: 'file not found', code: 1 });
    expect(t.get(MAC)!.error).toBe('upstream 404 for ipxe/undionly.kpxe');
  });

  it('names the DHCP range the policy reports when the pool is exhausted', () => {
    const { ev, t } = setup();
    ev('dhcp.discover', { firmware: 'bios', arch: 'bios' });
    ev('dhcp.pool-exhausted', { firmware: 'bios', arch: 'bios', range: ['10.99.0.100', '10.99.0.102'] });
    expect(t.get(MAC)!.error).toBe('the DHCP pool is exhausted (range 10.99.0.100–10.99.0.102): no address left for this client');
  });

  it('has a word for every transfer failure reason the services emit; only a client abort over TFTP is no failure', () => {
    const tftp: Record<TftpFailure, string | undefined> = {
      aborted: undefined,
      'not-found': 'upstream 404 for ipxe/undionly.kpxe',
      refused: 'TFTP request for ipxe/undionly.kpxe refused: e',
      timeout: 'the TFTP transfer of ipxe/undionly.kpxe timed out: e',
      'upstream-error': 'TFTP transfer of ipxe/undionly.kpxe failed: e',
    };
    for (const [reason, want] of Object.entries(tftp)) {
      expect(transferFailure({ ts: '', type: 'tftp.error', file: 'ipxe/undionly.kpxe', reason: reason as TftpFailure, error: 'e' }, 'ipxe/undionly.kpxe', 'loader', MAC)).toBe(want);
    }
    const http: Record<HttpFailure, string> = {
      aborted: 'HTTP transfer of debian/vmlinuz failed: e',
      'not-found': 'upstream 404 for debian/vmlinuz',
      refused: 'upstream 403 for debian/vmlinuz',
      'upstream-error': 'upstream 502 for debian/vmlinuz',
      'no-profile': `no boot profile for ${MAC}: set boot.defaultProfile or use relayctl assign`,
    };
    const status: Record<HttpFailure, number | undefined> = { aborted: undefined, 'not-found': 404, refused: 403, 'upstream-error': 502, 'no-profile': undefined };
    for (const [reason, want] of Object.entries(http)) {
      const r = reason as HttpFailure;
      expect(transferFailure({ ts: '', type: 'http.error', file: 'debian/vmlinuz', reason: r, error: 'e', status: status[r] }, 'debian/vmlinuz', 'kernel', MAC)).toBe(want);
    }
  });

  it('fails a UEFI x64 client that is offered the BIOS loader', () => {
    const { ev, t } = setup();
    ev('dhcp.discover', { firmware: 'uefi', arch: 'uefi-x64' });
    ev('dhcp.offer', { firmware: 'uefi', arch: 'uefi-x64', file: 'ipxe/undionly.kpxe' });
    expect(t.get(MAC)!.error).toBe('a UEFI x64 client was offered the bios loader ipxe/undionly.kpxe, which it cannot run');
  });

  it('fails a client whose arch has no loader', () => {
    const { ev, t } = setup();
    ev('dhcp.discover', { firmware: 'uefi', arch: 'uefi-arm64' });
    ev('dhcp.no-loader', { arch: 'uefi-arm64' });
    expect(t.get(MAC)).toMatchObject({ phase: 'failed', error: 'no loader configured for arch uefi-arm64' });
    expect(t.explain(MAC).join(' ')).toMatch(/boot\.loaders/);
  });

  it('says why a client gets no boot when dhcp.knownClientsOnly turns it away (events in the DHCP service\'s order)', () => {
    const { ev, t } = setup();
    ev('dhcp.discover', { firmware: 'bios', arch: 'bios' });
    ev('dhcp.unknown-client', { firmware: 'bios', arch: 'bios', detail: 'not named' });
    ev('dhcp.offer', { firmware: 'bios', arch: 'bios', ip: '10.99.0.100' });
    expect(t.get(MAC)).toMatchObject({ phase: 'failed', error: expect.stringMatching(/knownClientsOnly/) });
    expect(t.explain(MAC).join(' ')).toMatch(/boot\.assign or dhcp\.static/);
  });

  it('fails a transfer that makes no progress for 60 s, and recovers when it resumes', () => {
    const { ev, t, advance } = setup();
    ev('dhcp.discover', { firmware: 'ipxe', arch: 'bios' });
    ev('http.start', { file: 'debian/vmlinuz', totalBytes: 10_000_000 });
    advance(30_000);
    ev('http.progress', { file: 'debian/vmlinuz', bytes: 1_000_000, totalBytes: 10_000_000 });
    advance(59_000);
    expect(t.get(MAC)!.phase).toBe('kernel');
    advance(1_000);
    expect(t.get(MAC)!.error).toBe('no progress for 60 s while loading debian/vmlinuz over HTTP (1.0 MB of 10.0 MB)');
    ev('http.start', { file: 'debian/vmlinuz', totalBytes: 10_000_000 });
    expect(t.get(MAC)).toMatchObject({ phase: 'kernel', error: null });
  });

  it('leaves a client in handoff however long the OS stays silent', () => {
    const { ev, t, advance } = setup();
    ev('dhcp.discover', { firmware: 'ipxe', arch: 'bios' });
    ev('http.start', { file: 'debian/vmlinuz' });
    ev('http.done', { file: 'debian/vmlinuz' });
    ev('http.start', { file: 'debian/initrd.gz' });
    ev('http.done', { file: 'debian/initrd.gz' });
    advance(3_600_000);
    expect(t.get(MAC)).toMatchObject({ phase: 'handoff', error: null });
    expect(t.explain(MAC).join(' ')).toMatch(/has not reported back/);
    // the booted OS's own DHCP does not start a new boot
    ev('dhcp.request', { firmware: 'other', ip: '10.99.0.120' });
    ev('dhcp.ack', { firmware: 'other', ip: '10.99.0.120' });
    expect(t.get(MAC)).toMatchObject({ phase: 'handoff', ip: '10.99.0.120' });
  });

  it('starts a new boot when a booted client PXE boots again', () => {
    const { ev, t, advance } = setup();
    ev('dhcp.discover', { firmware: 'bios', arch: 'bios' });
    ev('client.booted');
    const first = t.get(MAC)!.startedAt;
    advance(10_000);
    ev('dhcp.discover', { firmware: 'bios', arch: 'bios' });
    const s = t.get(MAC)!;
    expect(s.phase).toBe('dhcp');
    expect(s.startedAt).not.toBe(first);
    expect(Object.keys(s.phases)).toEqual(['dhcp']);
  });

  it('ignores DHCP from devices that are not netbooting', () => {
    const { t } = setup();
    expect(t.apply(makeEvent({ type: 'dhcp.discover', mac: 'aa:bb:cc:dd:ee:ff', firmware: 'other' }))).toBeUndefined();
    expect(t.apply(makeEvent({ type: 'uplink.down' }))).toBeUndefined();
    expect(t.list()).toEqual([]);
  });

  it('throttles byte progress to one emission per 250 ms, phase changes at once', () => {
    const { ev, emitted, advance } = setup();
    ev('dhcp.discover', { firmware: 'ipxe', arch: 'bios' });
    ev('http.start', { file: 'debian/vmlinuz', totalBytes: 1_000_000 });
    const base = emitted.length;
    for (let i = 1; i <= 100; i++) {
      ev('http.progress', { file: 'debian/vmlinuz', bytes: i * 1000, totalBytes: 1_000_000 });
      advance(10); // 100 events over 1 s
    }
    const progress = emitted.slice(base);
    expect(progress.length).toBeGreaterThanOrEqual(3);
    expect(progress.length).toBeLessThanOrEqual(5);
    advance(300); // the trailing update is flushed by tick
    expect(emitted.at(-1)!.bytes).toBe(100_000);
    ev('http.done', { file: 'debian/vmlinuz', bytes: 1_000_000 });
    ev('http.start', { file: 'debian/initrd.gz' });
    expect(emitted.at(-1)!.phase).toBe('initrd');
  });

  it('uses runtime assignments and the event profile', () => {
    const { t, ev, plan } = setup();
    plan.assign(MAC, 'bare');
    ev('dhcp.discover', { firmware: 'ipxe' });
    expect(t.get(MAC)!.profile).toBe('bare');
    ev('http.start', { file: '/boot.ipxe', profile: 'two' });
    expect(t.get(MAC)!.profile).toBe('two');
  });

  it('explains an unknown MAC', () => {
    const { t } = setup();
    expect(t.explain('52-54-00-AA-BB-CC')[0]).toMatch(/Nothing has been seen from 52:54:00:aa:bb:cc/);
  });

  it('bounds the number of clients it remembers', () => {
    const { t } = setup({ maxClients: 3 });
    for (let i = 0; i < 5; i++) t.apply(makeEvent({ type: 'dhcp.discover', mac: `52:54:00:00:01:0${i}`, firmware: 'bios' }));
    expect(t.list()).toHaveLength(3);
  });
});
