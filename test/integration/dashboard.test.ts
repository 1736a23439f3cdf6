/**
 * The dashboard page: self-contained, its script parses, and its hand-written
 * MQTT-over-WebSocket client (the same source text the page embeds) talks to a
 * REAL Mosquitto websocket listener and follows what MqttPublisher publishes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import mqttPacket from 'mqtt-packet';
import { DASHBOARD_HTML, MQTT_WS_JS } from '../../agent/dashboard/index';
import { MqttPublisher } from '../../agent/publish/mqtt';
import { Metrics } from '../../relay/metrics';
import { silentLogger } from '../../agent/log';
import { Mosquitto, mosquittoSkipReason } from '../helpers/mosquitto';
import { waitFor } from '../helpers/netns';
import { describeSkipIf } from '../helpers/skip';

interface Handlers {
  connect?: () => void;
  message?: (topic: string, text: string, retain: boolean) => void;
  close?: (reason: string) => void;
}
type CreateClient = (WS: unknown, url: string, opts: { topics: string[]; clientId?: string; username?: string; password?: string; keepalive?: number }, on: Handlers) => { close(): void };

const createMqttWsClient = new Function(`${MQTT_WS_JS}; return createMqttWsClient;`)() as CreateClient;

function script(html: string): string {
  const a = html.indexOf('<script>');
  const b = html.indexOf('</script>');
  expect(a).toBeGreaterThan(0);
  return html.slice(a + 8, b);
}

describe('dashboard page', () => {
  it('is one self-contained page: no external scripts, styles or fonts', () => {
    expect(DASHBOARD_HTML.startsWith('<!doctype html>')).toBe(true);
    expect(DASHBOARD_HTML).not.toMatch(/<script[^>]+src=/i);
    expect(DASHBOARD_HTML).not.toMatch(/<link[^>]+href=/i);
    expect(DASHBOARD_HTML).not.toMatch(/@import|url\(\s*['"]?https?:/i);
    expect(DASHBOARD_HTML.match(/<script>/g)).toHaveLength(1);
  });

  it('has a script that parses and uses the contract feeds', () => {
    const js = script(DASHBOARD_HTML);
    expect(() => new Function(js)).not.toThrow();
    for (const s of ['/api/status', '/api/clients', '/api/events', "'mqtt'", "+/clients/+", 'data-mac', 'data-phase']) expect(js).toContain(s);
  });
});

/** A WebSocket stand-in for the codec tests: records what is sent, lets the test deliver bytes. */
class FakeWS {
  static last: FakeWS;
  sent: Uint8Array[] = [];
  readyState = 0;
  binaryType = '';
  onopen?: () => void;
  onmessage?: (m: { data: ArrayBuffer }) => void;
  onclose?: () => void;
  onerror?: () => void;
  constructor(
    readonly url: string,
    readonly protocol: string,
  ) {
    FakeWS.last = this;
  }
  open(): void {
    this.readyState = 1;
    this.onopen?.();
  }
  send(b: Uint8Array): void {
    this.sent.push(b);
  }
  deliver(bytes: Uint8Array): void {
    const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    this.onmessage?.({ data: ab });
  }
  close(): void {
    this.readyState = 3;
  }
}

function parseAll(chunks: Uint8Array[]): mqttPacket.Packet[] {
  const out: mqttPacket.Packet[] = [];
  const p = mqttPacket.parser({ protocolVersion: 4 });
  p.on('packet', (pk) => out.push(pk));
  p.on('error', (e) => {
    throw e;
  });
  for (const c of chunks) p.parse(Buffer.from(c));
  return out;
}

describe('dashboard MQTT-over-WebSocket client (codec)', () => {
  it('sends a valid CONNECT (3.1.1, clean, credentials) and SUBSCRIBE after CONNACK', () => {
    const msgs: Array<[string, string, boolean]> = [];
    let connected = 0;
    createMqttWsClient(FakeWS, 'ws://x', { topics: ['br/+/status', 'br/+/clients/+'], clientId: 'dash1', username: 'u', password: 'p', keepalive: 20 }, {
      connect: () => connected++,
      message: (t, x, r) => msgs.push([t, x, r]),
    });
    const ws = FakeWS.last;
    expect(ws.protocol).toBe('mqtt');
    ws.open();
    ws.deliver(new Uint8Array([0x20, 2, 0, 0]));
    expect(connected).toBe(1);
    const pk = parseAll(ws.sent);
    expect(pk[0]).toMatchObject({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'dash1', keepalive: 20, username: 'u' });
    expect(String((pk[0] as mqttPacket.IConnectPacket).password)).toBe('p');
    expect(pk[1]).toMatchObject({ cmd: 'subscribe', subscriptions: [{ topic: 'br/+/status', qos: 0 }, { topic: 'br/+/clients/+', qos: 0 }] });
    FakeWS.last.onclose?.();
  });

  it('parses PUBLISH packets split byte by byte and packed together, acks QoS 1, keeps the retain flag', () => {
    const msgs: Array<[string, string, boolean]> = [];
    createMqttWsClient(FakeWS, 'ws://x', { topics: ['#'] }, { message: (t, x, r) => msgs.push([t, x, r]) });
    const ws = FakeWS.last;
    ws.open();
    ws.deliver(new Uint8Array([0x20, 2, 0, 0]));
    const big = 'é'.repeat(20000); // > 16383 bytes: a 3-byte remaining length, multi-byte UTF-8
    const a = mqttPacket.generate({ cmd: 'publish', topic: 'br/a/clients/52:54:00:00:00:01', payload: Buffer.from(JSON.stringify({ phase: 'kernel', big })), qos: 0, dup: false, retain: true });
    const b = mqttPacket.generate({ cmd: 'publish', topic: 'br/a/events', payload: Buffer.from('{"type":"dhcp.ack"}'), qos: 1, messageId: 4242, dup: false, retain: false });
    const c = mqttPacket.generate({ cmd: 'publish', topic: 'br/a/status', payload: Buffer.from(''), qos: 0, dup: false, retain: true });
    const all = Buffer.concat([a, b, c]);
    // a's first 1000 bytes one at a time, then the rest in one message
    for (let i = 0; i < 1000; i++) ws.deliver(all.subarray(i, i + 1));
    ws.deliver(all.subarray(1000));
    expect(msgs).toHaveLength(3);
    expect(msgs[0]![0]).toBe('br/a/clients/52:54:00:00:00:01');
    expect(JSON.parse(msgs[0]![1])).toEqual({ phase: 'kernel', big });
    expect(msgs[0]![2]).toBe(true);
    expect(msgs[1]).toEqual(['br/a/events', '{"type":"dhcp.ack"}', false]);
    expect(msgs[2]).toEqual(['br/a/status', '', true]);
    const acks = parseAll(ws.sent.slice(2));
    expect(acks).toEqual([expect.objectContaining({ cmd: 'puback', messageId: 4242 })]);
    ws.onclose?.();
  });

  it('reports a refused connection and stops', () => {
    let reason = '';
    createMqttWsClient(FakeWS, 'ws://x', { topics: ['#'] }, { close: (r) => (reason = r) });
    FakeWS.last.open();
    FakeWS.last.deliver(new Uint8Array([0x20, 2, 0, 5]));
    expect(reason).toMatch(/refused, code 5/);
  });
});

const skip = mosquittoSkipReason();

describeSkipIf(skip)('dashboard MQTT-over-WebSocket client with a real Mosquitto', () => {
  let broker: Mosquitto;
  let dir: string;
  beforeAll(async () => {
    broker = await Mosquitto.start();
    dir = mkdtempSync(join(tmpdir(), 'br-dash-'));
  });
  afterAll(async () => {
    await broker?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('follows a relay: retained status and client state, live events, a large state', async () => {
    const agentId = `dash${process.pid}`;
    const pub = new MqttPublisher({
      config: { url: broker.url, username: '', password: '', prefix: 'brdash', journalMaxEvents: 100, homeAssistant: false, commands: false },
      agentId,
      stateDir: dir,
      log: silentLogger,
      metrics: new Metrics(),
      status: () => ({ version: 't', uplink: 'up', clients: 1, cache: {} }),
      reconnectMinMs: 100,
      journalFlushMs: 20,
    });
    await pub.start();
    const got: Array<{ topic: string; text: string; retain: boolean }> = [];
    let client: { close(): void } | undefined;
    try {
      await waitFor(() => pub.connected, 5000, 'publisher');
      pub.publishClient({ mac: '52:54:00:00:00:07', phase: 'kernel', bytes: 10, totalBytes: 100 });
      let connected = false;
      let closed = '';
      client = createMqttWsClient(WebSocket, broker.wsUrl, { topics: ['brdash/+/status', 'brdash/+/clients/+', 'brdash/+/events'] }, {
        connect: () => (connected = true),
        message: (topic, text, retain) => got.push({ topic, text, retain }),
        close: (r) => (closed = r),
      });
      const base = `brdash/${agentId}`;
      await waitFor(() => got.some((m) => m.topic === `${base}/status`) && got.some((m) => m.topic === `${base}/clients/52:54:00:00:00:07`), 5000, 'retained state over websocket');
      expect(connected).toBe(true);
      expect(closed).toBe('');
      expect(got.find((m) => m.topic === `${base}/status`)).toMatchObject({ retain: true });
      expect(JSON.parse(got.find((m) => m.topic === `${base}/status`)!.text)).toMatchObject({ online: true });
      pub.publishEvent({ ts: new Date().toISOString(), type: 'tftp.done', mac: '52:54:00:00:00:07', file: 'ipxe/undionly.kpxe' });
      await waitFor(() => got.some((m) => m.topic === `${base}/events`), 5000, 'live event');
      expect(got.find((m) => m.topic === `${base}/events`)).toMatchObject({ retain: false });
      // 50 KB: a 3-byte remaining length. (Mosquitto 2.0.11's websocket listener does not
      // deliver messages over 64 KiB at all, to MQTT.js either; client states are far smaller.)
      const error = 'x'.repeat(50_000);
      pub.publishClient({ mac: '52:54:00:00:00:07', phase: 'failed', error });
      await waitFor(() => got.some((m) => m.text.includes('"failed"')), 5000, 'large state');
      expect(JSON.parse(got.find((m) => m.text.includes('"failed"'))!.text).error).toBe(error);
    } finally {
      client?.close();
      await pub.stop(500);
    }
  });
});
