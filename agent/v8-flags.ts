/**
 * V8 tiering for a router's one or two cores, set before any other module of the
 * agent runs (agent/main.ts imports this first), so it holds however the agent is
 * started: the OpenWrt launcher, `node dist/bootrelay.js`, the tests and the demo.
 *
 * --interrupt-budget at 30 × V8's default: a function is optimised only after 30 ×
 * as much use. The optimising compiler's jobs run on a helper thread that competes
 * with the event loop for the CPU; with the default they went to every DHCP
 * exchange's code in the agent's first seconds and pushed the ACK tail up (bench/
 * dhcp, 200 DORA/s: ACK p99 of the first 5 s 3.2 ms, of the last 5 s 1.1 ms; with
 * this, 0.9 and 1.0 ms). Hot loops (a TFTP transfer's blocks) are still optimised:
 * lock-step TFTP CPU per MiB 1.28 → 1.39 × tftpd-hpa (bench/tftp).
 * An --interrupt-budget given on the command line wins.
 */
import { setFlagsFromString } from 'node:v8';

export const INTERRUPT_BUDGET = 30 * 67_584;

if (!process.execArgv.some((a) => a.startsWith('--interrupt-budget'))) setFlagsFromString(`--interrupt-budget=${INTERRUPT_BUDGET}`);
