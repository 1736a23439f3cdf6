/**
 * image/files/etc/init.d/bootrelay, sourced the way /etc/rc.common does, with procd's shell
 * API, logger, uci, relayctl and the router helper as stand-ins that print what they were asked.
 * Runs under dash and (when present) busybox ash, OpenWrt's shell.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { describeSkipIf, missingCmds } from '../helpers/skip';

const root = join(__dirname, '../..');
const init = join(root, 'image/files/etc/init.d/bootrelay');
const tmp = mkdtempSync(join(tmpdir(), 'bootrelay-init-'));

const HARNESS = `
procd_open_instance() { echo "open $*"; }
procd_set_param() { echo "param $*"; }
procd_close_instance() { echo "close"; }
procd_add_reload_trigger() { echo "trigger $*"; }
procd_running() { [ "\${RUNNING:-0}" = 1 ]; }
procd_send_signal() { echo "signal $*"; }
logger() { echo "logger $*"; }
uci() { [ "$3" = "bootrelay.@agent[0].enabled" ] && [ -n "\${ENABLED:-}" ] && echo "$ENABLED"; }
start() { echo "start"; }
stop() { echo "stop"; }
. "$INIT"
CTL="$STUB_CTL"
ROUTER="$STUB_ROUTER"
"$@"
echo "rc=$?"
`;
writeFileSync(join(tmp, 'harness.sh'), HARNESS);
writeFileSync(
  join(tmp, 'relayctl'),
  `#!/bin/sh
[ "$1 $2 $3" = "config check /etc/config/bootrelay" ] || { echo "unexpected: $*"; exit 2; }
[ "\${GOOD:-1}" = 1 ] && exit 0
echo '/etc/config/bootrelay: bootrelay.@dhcp[0].lease_seconds: expected an integer, got "abc"'
echo '/etc/config/bootrelay: lan.address: expected an IPv4 address, got "10.99.0.300"'
exit 1
`,
);
writeFileSync(join(tmp, 'router'), '#!/bin/sh\necho "router $*"\n');
chmodSync(join(tmp, 'relayctl'), 0o755);
chmodSync(join(tmp, 'router'), 0o755);

// name, command, why it cannot run here (OpenWrt's shell is busybox ash)
const shells: Array<[string, string[], string | undefined]> = [
  ['dash', ['sh'], undefined],
  ['busybox ash', ['busybox', 'ash'], missingCmds('busybox')],
];

for (const [name, shell, why] of shells) describeSkipIf(why)(`init.d/bootrelay under ${name}`, () => {
  const call = (fn: string, env: Record<string, string> = {}): string[] => {
    const r = spawnSync(shell[0]!, [...shell.slice(1), join(tmp, 'harness.sh'), fn], {
      env: { PATH: process.env.PATH, INIT: init, STUB_CTL: join(tmp, 'relayctl'), STUB_ROUTER: join(tmp, 'router'), ...env },
      encoding: 'utf8',
      timeout: 10_000,
    });
    expect(r.stderr).toBe('');
    return r.stdout.trim().split('\n');
  };

  it('starts one procd instance that respawns and logs stdout/stderr to logd', () => {
    expect(call('start_service')).toEqual([
      'router apply',
      'open bootrelay',
      'param command /usr/bin/bootrelay --config /etc/config/bootrelay',
      'param respawn 3600 5 5',
      'param stdout 1',
      'param stderr 1',
      'param file /etc/config/bootrelay',
      'close',
      'rc=0',
    ]);
  });

  it('does not start on a bad config and says why in one logread line', () => {
    expect(call('start_service', { GOOD: '0' })).toEqual([
      'logger -t bootrelay -p daemon.err not started: /etc/config/bootrelay is invalid: ' +
        'bootrelay.@dhcp[0].lease_seconds: expected an integer, got "abc"; lan.address: expected an IPv4 address, got "10.99.0.300"',
      'rc=1',
    ]);
  });

  it('does not start when disabled in UCI, and hands the router back', () => {
    expect(call('start_service', { ENABLED: '0' })).toEqual(['logger -t bootrelay disabled (bootrelay.@agent[0].enabled=0): not started', 'router apply', 'rc=0']);
  });

  it('reloads on UCI changes: validate, then SIGHUP the running agent', () => {
    expect(call('service_triggers')).toEqual(['trigger bootrelay', 'rc=0']);
    expect(call('reload_service', { RUNNING: '1' })).toEqual(['router apply', 'signal bootrelay bootrelay HUP', 'rc=0']);
    expect(call('reload_service', { RUNNING: '0' })).toEqual(['router apply', 'start', 'rc=0']);
  });

  it('keeps the running agent when the new config is bad', () => {
    const out = call('reload_service', { RUNNING: '1', GOOD: '0' });
    expect(out).toHaveLength(2);
    expect(out[0]).toMatch(/^logger -t bootrelay -p daemon\.err not reloaded, still running the previous config: \/etc\/config\/bootrelay is invalid: bootrelay\.@dhcp\[0\]\.lease_seconds: /);
    expect(out[1]).toBe('rc=1');
  });
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});
