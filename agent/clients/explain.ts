/**
 * explain: sentences a person reads about one client (relayctl explain, the dashboard):
 * where it is in its boot, how long each phase took, and when it failed, the likely cause.
 * Pure over the client's record and the time.
 */
import { CLIENT_PHASES } from '../../proto/events';
import { agoText, ARCH_NAMES, fmtBytes, fmtDuration } from './diagnosis';
import type { ClientRecord } from './record';
import { refusedLoaderHint } from './secureboot';

/** Sentences that say where a client is and, when it is stuck or failed, the likely cause. `c`: the tracker's record of `m`, if any. */
export function explain(m: string, c: ClientRecord | undefined, now: number): string[] {
  if (!c) {
    return [
      `Nothing has been seen from ${m} since the agent started: no DHCP, TFTP or HTTP request.`,
      'If it should be booting, check that it is cabled to the LAN side, that network (PXE) boot is enabled and first in its firmware boot order, and, in proxy mode, that the LAN has a DHCP server answering it.',
    ];
  }
  const s = c.s;
  const out: string[] = [];
  const fwText =
    s.firmware === 'ipxe'
      ? 'an iPXE client'
      : s.firmware === 'uefi-http'
        ? 'a UEFI HTTP Boot client'
        : s.firmware === 'bios'
          ? 'a BIOS PXE client'
          : s.firmware === 'uefi'
            ? 'a UEFI PXE client'
            : 'a client';
  const archText = s.arch ? ` (${ARCH_NAMES[s.arch] ?? s.arch})` : '';
  out.push(`${m} is ${fwText}${archText}${s.ip ? ` at ${s.ip}` : ''}${s.profile ? `, booting profile "${s.profile}"` : ''}; this boot started ${agoText(now - Date.parse(s.startedAt))}.`);

  const steps = CLIENT_PHASES.filter((p) => s.phases[p]).map((p) => {
    const ph = s.phases[p]!;
    const end = ph.endedAt ? Date.parse(ph.endedAt) : p === s.phase ? now : undefined;
    return end !== undefined && p !== 'booted' ? `${p} ${fmtDuration(end - Date.parse(ph.startedAt))}` : p;
  });
  if (steps.length) out.push(`Phases so far: ${steps.join(' → ')}${s.phase === 'failed' ? ' → failed' : ''}.`);

  const sinceMs = s.phases[s.phase] ? now - Date.parse(s.phases[s.phase]!.startedAt) : 0;
  const since = fmtDuration(sinceMs);
  switch (s.phase) {
    case 'dhcp':
      out.push(`It has been in DHCP for ${since} and has not been given an address yet; if this lasts, see \`relayctl leases\`, and set log.levels.dhcp to "debug" to log why its requests are ignored.`);
      break;
    case 'bound':
      out.push(`It has an address${s.bootFile ? ` and was told to load ${s.bootFile}` : ''}; it has not asked for a boot file yet (${since}).`);
      break;
    case 'loader':
    case 'ipxe':
    case 'kernel':
    case 'initrd': {
      const what = s.phase === 'ipxe' ? 'iPXE is running' : `it is loading the ${s.phase}`;
      let line = `Now ${what}${s.file ? `: ${s.file}` : ''}`;
      if (s.file && s.totalBytes) line += `, ${fmtBytes(s.bytes)} of ${fmtBytes(s.totalBytes)}`;
      else if (s.file && s.bytes) line += `, ${fmtBytes(s.bytes)} so far`;
      if (s.rate) line += ` at ${fmtBytes(s.rate)}/s`;
      if (s.etaSeconds !== undefined && s.etaSeconds > 0) line += `, about ${fmtDuration(s.etaSeconds * 1000)} left`;
      out.push(line + '.');
      break;
    }
    case 'handoff':
      out.push(
        `Kernel and initrd were delivered ${agoText(sinceMs)}; the operating system has not reported back. That only happens if the booted system calls GET /booted?mac=${m}; without that, handoff is the last phase the relay can see.`,
      );
      break;
    case 'booted':
      out.push(`It reported booted ${agoText(sinceMs)}.`);
      break;
    case 'failed':
      out.push(`It failed${s.failedPhase ? ` in phase ${s.failedPhase}` : ''} ${agoText(sinceMs)}: ${s.error ?? 'no reason recorded'}.`);
      out.push(...hint(c));
      break;
  }
  const last = c.history.slice(-6).map((h) => `${new Date(h.at).toISOString().slice(11, 19)} ${h.type}${h.file ? ' ' + h.file : ''}${h.detail ? ` (${h.detail})` : ''}`);
  if (last.length) out.push(`Last events: ${last.join('; ')}.`);
  return out;
}

function hint(c: ClientRecord): string[] {
  const s = c.s;
  switch (c.failKind) {
    case 'no-request-tftp':
      return [
        `It was offered ${s.bootFile ?? 'a loader'} but never asked for it over TFTP. Likely causes: Secure Boot refusing an unsigned loader, a loader for another architecture, a firewall dropping udp/69 on the LAN, or another DHCP server's answer winning.`,
      ];
    case 'no-request-http':
      return [`It was offered ${s.bootFile ?? 'a loader'} by URL but never fetched it: check that the relay's HTTP port is reachable from the LAN and that the firmware supports HTTP Boot.`];
    case 'no-request-script':
      return ["iPXE got the /boot.ipxe URL but never fetched it: check that the relay's HTTP port is reachable from the LAN (firewall) and that iPXE has an address on the LAN."];
    case 'unknown-client':
      return [`Name ${s.mac} in boot.assign or dhcp.static (or a boot.match rule with its MAC), or turn dhcp.knownClientsOnly off.`];
    case 'no-loader':
      return [`Add a loader for this architecture to boot.loaders in the config (e.g. "${s.arch ?? 'uefi-x64'}": "ipxe/…efi").`];
    case 'wrong-arch':
      return [`Check boot.loaders["${s.arch}"] in the config: the path must be a loader built for this architecture.`];
    case 'transfer':
      return /upstream 404/.test(s.error ?? '')
        ? ['The upstream server has no such file: check the path in the profile or boot.loaders against the upstream, and `relayctl cache ls`.']
        : ['See `relayctl trace` for the exchange and the agent log for the upstream response.'];
    case 'stall':
      return ['The transfer stopped in the middle: the client may have rebooted or lost its link, or the upstream stalled (see `relayctl status` for the uplink).'];
    case 'pool':
      return ['Widen dhcp.range or shorten dhcp.leaseSeconds; `relayctl leases` lists who holds the addresses.'];
    case 'secure-boot':
      return [refusedLoaderHint(c.refused ?? { arch: s.arch, signedChain: false })];
    case 'needs-ipxe':
      return [`Assign this client a profile with a kernel (relayctl assign ${s.mac} PROFILE), or give its architecture an iPXE loader in boot.loaders (with Secure Boot off).`];
    case 'kernel-refused':
      return ["Under Secure Boot GRUB loads only kernels signed by a key the shim trusts: Debian's shim and GRUB boot Debian's signed kernels (Ubuntu's Ubuntu's …). Put the matching vendor's shim and GRUB for this profile, enroll its key (MOK), or boot with Secure Boot off."];
    default:
      return [];
  }
}
