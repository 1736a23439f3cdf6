import { describe, expect, it } from 'vitest';
import type { BootConfig } from '../../../../relay/boot/config';
import { BootPlan } from '../../../../relay/boot/plan';

const BOOT: BootConfig = {
  loaders: { bios: ['ipxe/undionly.kpxe'], 'uefi-x64': ['ipxe/snponly.efi', 'ipxe/ipxe.efi'], 'uefi-ia32': ['ipxe/ipxe.efi'] },
  defaultProfile: 'debian',
  profiles: {
    debian: { kernel: 'debian/vmlinuz', initrd: ['debian/initrd.gz'] },
    menu: { script: 'menus/main.ipxe' },
    rescue: { kernel: 'rescue/vmlinuz', initrd: ['debian/initrd.gz'] },
  },
  assign: { '52:54:00:00:00:02': 'menu' },
};

describe('BootPlan', () => {
  it('finds a profile sha256 by normalised path, lower-cased', () => {
    const look = new BootPlan({
      boot: {
        loaders: {},
        defaultProfile: 'a',
        assign: {},
        profiles: {
          a: { kernel: 'd/vmlinuz', sha256: { '/d/vmlinuz': 'AB'.repeat(32) } },
          b: { script: 'm.ipxe', sha256: { '../bad': '00' } },
          c: {},
        },
      },
    });
    expect(look.expectedSha256('d/vmlinuz')).toBe('ab'.repeat(32));
    expect(look.expectedSha256('m.ipxe')).toBeUndefined();
  });

  it('gives a client its runtime assignment, else boot.assign, else the default', () => {
    const plan = new BootPlan({ boot: BOOT });
    expect(plan.profileName('52:54:00:00:00:01')).toBe('debian');
    expect(plan.profileName('52:54:00:00:00:02')).toBe('menu');
    expect(plan.profileName(undefined)).toBe('debian');
    plan.assign('52:54:00:00:00:02', 'rescue');
    expect(plan.profileFor('52-54-00-00-00-02')).toEqual({ name: 'rescue', profile: BOOT.profiles.rescue });
    expect(() => plan.assign('52:54:00:00:00:03', 'nope')).toThrow(/no profile "nope"/);
  });

  it('says what a file is: loader (with its archs), script, kernel, initrd, in the client profile first', () => {
    const plan = new BootPlan({ boot: BOOT });
    expect(plan.fileRole('/boot.ipxe')).toBe('script');
    expect(plan.fileRole('ipxe/ipxe.efi')).toBe('loader');
    expect(plan.loaderArchs('/ipxe/ipxe.efi')).toEqual(['uefi-x64', 'uefi-ia32']);
    expect(plan.loaderArchs('debian/vmlinuz')).toBeUndefined();
    expect(plan.fileRole('menus/main.ipxe')).toBe('script');
    expect(plan.fileRole('rescue/vmlinuz', 'debian')).toBe('kernel');
    expect(plan.fileRole('debian/initrd.gz', 'rescue')).toBe('initrd');
    expect(plan.fileRole('autoexec.ipxe')).toBe('other');
  });

  it('netboots a client once under netbootOnce, until re-armed, and says when its state changed', () => {
    const plan = new BootPlan({ boot: BOOT, netbootOnce: true });
    let saves = 0;
    plan.on('runtime', () => saves++);
    expect(plan.shouldBoot('52:54:00:00:00:01')).toBe(true);
    expect(plan.noteBooted('52:54:00:00:00:01')).toBe(true);
    expect(plan.noteBooted('52:54:00:00:00:01')).toBe(false);
    expect(plan.shouldBoot('52:54:00:00:00:01')).toBe(false);
    expect(plan.rearm('52:54:00:00:00:01')).toBe(true);
    expect(plan.shouldBoot('52:54:00:00:00:01')).toBe(true);
    expect(saves).toBe(2);
    // without netbootOnce nobody is remembered (/booted is open to the whole LAN)
    const open = new BootPlan({ boot: BOOT });
    expect(open.noteBooted('52:54:00:00:00:01')).toBe(false);
    expect(open.runtime().booted).toEqual([]);
  });

  it('drops runtime assignments whose profile a reload removed, and restores only current ones', () => {
    const plan = new BootPlan({ boot: BOOT });
    plan.assign('52:54:00:00:00:05', 'rescue');
    const changes: Array<string | undefined> = [];
    plan.on('change', (m) => changes.push(m));
    const { rescue: _gone, ...rest } = BOOT.profiles;
    expect(plan.setConfig({ boot: { ...BOOT, profiles: rest } })).toEqual(['52:54:00:00:00:05']);
    expect(plan.profileName('52:54:00:00:00:05')).toBe('debian');
    expect(plan.assignments()).toEqual({});
    expect(changes).toEqual([undefined]);
    const again = new BootPlan({ boot: BOOT });
    expect(again.restore({ assign: { '52:54:00:00:00:06': 'menu', '52:54:00:00:00:07': 'gone' }, booted: ['52:54:00:00:00:08'] })).toEqual([{ mac: '52:54:00:00:00:07', profile: 'gone' }]);
    expect(again.runtime()).toEqual({ assign: { '52:54:00:00:00:06': 'menu' }, booted: ['52:54:00:00:00:08'] });
  });
});
