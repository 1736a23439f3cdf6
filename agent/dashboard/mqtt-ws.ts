/**
 * A minimal MQTT 3.1.1 client over WebSocket, as browser JavaScript source
 * (no CDN, no build step). The dashboard embeds it; tests evaluate the same
 * text in Node with the `ws` package's WebSocket against a real Mosquitto.
 *
 * It defines `createMqttWsClient(WS, url, opts, on)`:
 *   WS    a WebSocket constructor (window.WebSocket in a browser)
 *   url   ws://host:port (subprotocol 'mqtt')
 *   opts  { topics: string[], clientId?, username?, password?, keepalive? (s) }
 *   on    { connect(), message(topic, text, retain), close(reason) }
 * and returns { close() }. Subscriptions are QoS 0; a QoS 1/2 PUBLISH is
 * acknowledged anyway. Packets may arrive split across or packed into
 * WebSocket messages: bytes are buffered and parsed as a stream.
 *
 * Kept free of backticks and "${" so it can live in a template string.
 */
export const MQTT_WS_JS = String.raw`
function createMqttWsClient(WS, url, opts, on) {
  var enc = new TextEncoder();
  var dec = new TextDecoder();
  var buf = new Uint8Array(0);
  var closed = false;
  var ping = null;
  var ws = new WS(url, 'mqtt');
  ws.binaryType = 'arraybuffer';

  function str(s) {
    var b = enc.encode(s);
    var out = new Uint8Array(2 + b.length);
    out[0] = b.length >> 8; out[1] = b.length & 255; out.set(b, 2);
    return out;
  }
  function cat(parts) {
    var n = 0, i, o = 0;
    for (i = 0; i < parts.length; i++) n += parts[i].length;
    var out = new Uint8Array(n);
    for (i = 0; i < parts.length; i++) { out.set(parts[i], o); o += parts[i].length; }
    return out;
  }
  function packet(type, body) {
    // fixed header: type/flags byte + remaining length (MQTT 3.1.1 section 2.2.3)
    var len = [], n = body.length;
    do { var d = n % 128; n = Math.floor(n / 128); if (n > 0) d |= 128; len.push(d); } while (n > 0);
    return cat([new Uint8Array([type]), new Uint8Array(len), body]);
  }
  function send(p) { if (ws.readyState === 1) ws.send(p); }

  ws.onopen = function () {
    var flags = 2; // clean session
    var payload = [str(opts.clientId || ('dash-' + Math.random().toString(16).slice(2, 10)))];
    if (opts.username) { flags |= 128; payload.push(str(opts.username)); }
    if (opts.password) { flags |= 64; payload.push(str(opts.password)); }
    var ka = opts.keepalive || 30;
    send(packet(0x10, cat([str('MQTT'), new Uint8Array([4, flags, ka >> 8, ka & 255])].concat(payload))));
    ping = setInterval(function () { send(new Uint8Array([0xc0, 0])); }, ka * 500);
  };
  ws.onmessage = function (m) {
    var data = new Uint8Array(m.data);
    buf = buf.length ? cat([buf, data]) : data;
    for (;;) {
      if (buf.length < 2) return;
      var mult = 1, len = 0, i = 1, d;
      do {
        if (i >= buf.length) return;
        d = buf[i++]; len += (d & 127) * mult; mult *= 128;
        if (i > 5) { fail('bad remaining length'); return; }
      } while (d & 128);
      if (buf.length < i + len) return;
      var type = buf[0], body = buf.subarray(i, i + len);
      buf = buf.subarray(i + len);
      handle(type, body);
      if (closed) return;
    }
  };
  function handle(type, body) {
    var kind = type >> 4;
    if (kind === 2) { // CONNACK
      if (body.length < 2 || body[1] !== 0) { fail('connection refused, code ' + body[1]); return; }
      var subs = [new Uint8Array([0, 1])];
      for (var t = 0; t < opts.topics.length; t++) subs.push(str(opts.topics[t]), new Uint8Array([0]));
      send(packet(0x82, cat(subs)));
      if (on.connect) on.connect();
    } else if (kind === 3) { // PUBLISH
      var qos = (type >> 1) & 3, retain = (type & 1) === 1;
      if (body.length < 2) return;
      var tl = (body[0] << 8) | body[1];
      var topic = dec.decode(body.subarray(2, 2 + tl));
      var p = 2 + tl;
      if (qos > 0) {
        var id = body.subarray(p, p + 2);
        p += 2;
        send(new Uint8Array([qos === 1 ? 0x40 : 0x50, 2, id[0], id[1]]));
      }
      if (on.message) on.message(topic, dec.decode(body.subarray(p)), retain);
    }
    // SUBACK (9), PINGRESP (13): nothing to do
  }
  function fail(reason) {
    if (closed) return;
    closed = true;
    clearInterval(ping);
    try { ws.close(); } catch (e) { /* closing anyway */ }
    if (on.close) on.close(reason);
  }
  ws.onerror = function () { fail('websocket error'); };
  ws.onclose = function () { fail('closed'); };
  return {
    close: function () {
      if (closed) return;
      send(new Uint8Array([0xe0, 0])); // DISCONNECT
      fail('closed by us');
    },
  };
}
`;
