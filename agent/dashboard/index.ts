/**
 * The dashboard: one self-contained page (HTML + CSS + JS, no CDN, no build
 * step) served by the HTTP service at /dashboard/.
 *
 * Feeds:
 *  - local (default): GET /api/status and /api/clients, then the /api/events
 *    WebSocket ({kind:'client', state} | {kind:'event', event} | {kind:'status', status});
 *    reconnects with backoff and refetches.
 *  - remote: `?broker=ws://host:port&prefix=bootrelay` (optional `user`, `pass`):
 *    MQTT 3.1.1 over WebSocket straight to the broker (see mqtt-ws.ts); shows
 *    every relay publishing under the prefix, grouped by agentId (a fleet).
 *
 * Shows per client: MAC, IP, arch/firmware, profile, phase, a progress bar
 * (bytes/totalBytes), ETA, the file, a timeline of its phases with durations,
 * and errors in red; per relay: online, version, uplink, cache; recent events.
 * All text is set with textContent (client data comes from the network).
 * DOM hooks for tests: .relay[data-agent], .client[data-mac][data-phase].
 */
import { MQTT_WS_JS } from './mqtt-ws';

export { MQTT_WS_JS };

const CSS = String.raw`
:root { --bg:#0f1419; --card:#182029; --fg:#d8dee6; --dim:#8a96a3; --acc:#4aa3ff; --ok:#3fb950; --bad:#f85149; --warn:#d29922; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.4 system-ui, sans-serif; background:var(--bg); color:var(--fg); }
header { display:flex; align-items:center; gap:12px; padding:10px 16px; border-bottom:1px solid #263140; }
header h1 { font-size:18px; margin:0; }
#conn { font-size:12px; padding:2px 8px; border-radius:10px; background:#263140; }
#conn.on { background:#1f3d2a; color:var(--ok); } #conn.off { background:#3d1f1f; color:var(--bad); }
main { padding:12px 16px; display:grid; gap:16px; }
.relay { background:#131a22; border:1px solid #263140; border-radius:8px; padding:10px 12px; }
.relay.offline { opacity:.55; }
.relay h2 { font-size:16px; margin:0 0 6px; display:flex; gap:10px; align-items:baseline; flex-wrap:wrap; }
.relay h2 .meta { font-size:12px; color:var(--dim); font-weight:normal; }
.dot { display:inline-block; width:9px; height:9px; border-radius:50%; background:var(--bad); }
.dot.on { background:var(--ok); }
.clients { display:grid; grid-template-columns:repeat(auto-fill, minmax(360px, 1fr)); gap:10px; }
.client { background:var(--card); border-radius:6px; padding:8px 10px; border-left:4px solid var(--acc); }
.client[data-phase=booted] { border-left-color:var(--ok); }
.client[data-phase=failed] { border-left-color:var(--bad); }
.client .row { display:flex; justify-content:space-between; gap:8px; flex-wrap:wrap; }
.mac { font-family:ui-monospace, monospace; font-weight:600; }
.dim { color:var(--dim); font-size:12px; }
.phase { font-weight:600; text-transform:uppercase; font-size:12px; padding:1px 6px; border-radius:4px; background:#263140; }
.client[data-phase=booted] .phase { color:var(--ok); } .client[data-phase=failed] .phase { color:var(--bad); }
.bar { height:8px; background:#263140; border-radius:4px; overflow:hidden; margin:6px 0 2px; }
.bar > div { height:100%; background:var(--acc); width:0; transition:width .3s; }
.timeline { display:flex; gap:2px; margin-top:6px; }
.seg { flex:1 1 0; min-width:44px; background:#263140; border-radius:3px; padding:1px 4px; font-size:11px; line-height:1.25; white-space:nowrap; overflow:hidden; text-overflow:ellipsis; }
.seg small { display:block; font-size:10px; opacity:.85; }
.seg.done { background:#1e3a55; } .seg.cur { background:var(--acc); color:#071018; } .seg.failed { background:var(--bad); color:#fff; }
.error { color:var(--bad); font-weight:600; margin-top:4px; }
#events { background:#131a22; border:1px solid #263140; border-radius:8px; padding:8px 12px; max-height:260px; overflow:auto; font:12px ui-monospace, monospace; }
#events div.err { color:var(--bad); }
.empty { color:var(--dim); font-style:italic; }
`;

const APP_JS = String.raw`
(function () {
  var PHASES = ['dhcp', 'bound', 'loader', 'ipxe', 'kernel', 'initrd', 'handoff', 'booted'];
  var relays = {};   // agentId -> { status, clients: {mac: state} }
  var events = [];   // newest last, at most 200
  var params = new URLSearchParams(location.search);
  var broker = params.get('broker');
  var prefix = (params.get('prefix') || 'bootrelay').replace(/\/+$/, '');
  var LOCAL = '(this relay)';
  var localId = LOCAL;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function relay(id) {
    if (!relays[id]) relays[id] = { status: null, clients: {} };
    return relays[id];
  }
  function fmtBytes(n) {
    if (n === null || n === undefined) return '?';
    var u = ['B', 'KiB', 'MiB', 'GiB'], i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + ' ' + u[i];
  }
  function fmtDur(ms) {
    if (!(ms >= 0)) return '';
    if (ms < 1000) return ms + ' ms';
    var s = ms / 1000;
    if (s < 60) return s.toFixed(1) + ' s';
    var m = Math.floor(s / 60);
    return m + ' min ' + Math.round(s - m * 60) + ' s';
  }
  function t(iso) { var v = Date.parse(iso); return isNaN(v) ? null : v; }

  function eta(c) {
    if (typeof c.etaSeconds === 'number') return c.etaSeconds;
    if (c.rate > 0 && c.totalBytes > 0) return Math.max(0, (c.totalBytes - c.bytes) / c.rate);
    return null;
  }

  function renderClient(c) {
    var d = el('div', 'client');
    d.setAttribute('data-mac', c.mac);
    d.setAttribute('data-phase', c.phase || '');
    var r1 = el('div', 'row');
    r1.appendChild(el('span', 'mac', c.mac));
    r1.appendChild(el('span', 'phase', c.phase || '?'));
    d.appendChild(r1);
    var r2 = el('div', 'row dim');
    r2.appendChild(el('span', 'ip', [c.ip, c.ip6].filter(Boolean).join(' ') || 'no address'));
    r2.appendChild(el('span', 'arch', [c.arch, c.firmware].filter(Boolean).join(' / ') || 'unknown firmware'));
    r2.appendChild(el('span', 'profile', 'profile: ' + (c.profile || '-')));
    d.appendChild(r2);
    // the NIC iPXE booted from (USB dongles by name), the SMBIOS UUID, Secure Boot as the booted system reported it
    var extra = [];
    if (c.nic) extra.push('NIC: ' + String(c.nic.bus || '').toUpperCase() + ' ' + c.nic.vendor + ':' + c.nic.device + (c.nic.name ? ' ' + c.nic.name : ''));
    if (c.uuid) extra.push('UUID ' + c.uuid);
    if (c.secureBoot === true || c.secureBoot === false) extra.push('Secure Boot ' + (c.secureBoot ? 'on' : 'off'));
    if (extra.length) {
      var rx = el('div', 'row dim');
      rx.setAttribute('data-extra', '');
      for (var i = 0; i < extra.length; i++) rx.appendChild(el('span', null, extra[i]));
      d.appendChild(rx);
    }
    if (c.file) {
      var total = c.totalBytes || 0, bytes = c.bytes || 0;
      var pct = total > 0 ? Math.min(100, Math.round((100 * bytes) / total)) : (c.phase === 'booted' ? 100 : 0);
      var bar = el('div', 'bar');
      var fill = el('div');
      fill.style.width = pct + '%';
      bar.appendChild(fill);
      bar.setAttribute('title', pct + '%');
      d.appendChild(bar);
      var r3 = el('div', 'row dim');
      r3.appendChild(el('span', 'file', c.file));
      var e = eta(c);
      var txt = fmtBytes(bytes) + (total ? ' / ' + fmtBytes(total) + ' (' + pct + '%)' : '');
      if (e !== null && total && bytes < total && c.phase !== 'failed' && c.phase !== 'booted') txt += ' \u00b7 ETA ' + fmtDur(Math.round(e * 1000));
      r3.appendChild(el('span', 'progress', txt));
      d.appendChild(r3);
    }
    d.appendChild(timeline(c));
    if (c.error) d.appendChild(el('div', 'error', (c.failedPhase ? c.failedPhase + ': ' : '') + c.error));
    return d;
  }

  function timeline(c) {
    var tl = el('div', 'timeline');
    var ph = c.phases || {};
    var now = Date.now();
    var shown = PHASES.filter(function (p) { return ph[p] || p === c.phase; });
    shown.forEach(function (p, i) {
      var info = ph[p] || {};
      var start = t(info.startedAt);
      var end = t(info.endedAt);
      if (end === null && i + 1 < shown.length) end = t((ph[shown[i + 1]] || {}).startedAt);
      var cur = p === c.phase || (c.phase === 'failed' && p === c.failedPhase);
      if (end === null && cur && c.phase !== 'booted' && c.phase !== 'failed') end = now;
      var seg = el('div', 'seg ' + (c.phase === 'failed' && cur ? 'failed' : cur ? 'cur' : 'done'));
      seg.setAttribute('data-seg', p);
      var dur = start !== null && end !== null ? fmtDur(end - start) : '';
      // width grows with the duration (log scale), so long phases stand out
      if (start !== null && end !== null) seg.style.flexGrow = String(1 + Math.log10(1 + (end - start) / 1000) * 2);
      seg.appendChild(el('b', null, p));
      seg.appendChild(el('small', null, dur || '\u00a0'));
      seg.title = p + (dur ? ': ' + dur : '') + (info.startedAt ? ' (from ' + info.startedAt + ')' : '');
      tl.appendChild(seg);
    });
    if (c.phase === 'failed') {
      var f = el('div', 'seg failed', 'failed');
      f.setAttribute('data-seg', 'failed');
      tl.appendChild(f);
    }
    return tl;
  }

  function renderRelay(id, r) {
    var s = r.status || {};
    var sec = el('section', 'relay' + (s.online === false ? ' offline' : ''));
    sec.setAttribute('data-agent', id);
    var h = el('h2');
    h.appendChild(el('span', 'dot' + (s.online === false ? '' : ' on')));
    h.appendChild(el('span', null, id === LOCAL && s.agentId ? s.agentId : id));
    var meta = [];
    if (s.online === false) meta.push('offline');
    if (s.version) meta.push('v' + s.version);
    if (s.uplink) meta.push('uplink ' + (typeof s.uplink === 'object' ? (s.uplink.state || JSON.stringify(s.uplink)) : s.uplink));
    if (s.startedAt) meta.push('up since ' + String(s.startedAt).replace('T', ' ').replace(/\.\d+Z$/, 'Z'));
    if (s.cache && typeof s.cache === 'object') {
      var cs = s.cache;
      if (cs.bytes !== undefined) meta.push('cache ' + fmtBytes(cs.bytes) + (cs.entries !== undefined ? ' in ' + cs.entries + ' files' : ''));
      if (cs.hits !== undefined) meta.push(cs.hits + ' hits / ' + (cs.misses || 0) + ' misses');
    }
    if (s.mqtt && s.mqtt.dropped) meta.push(s.mqtt.dropped + ' events dropped');
    h.appendChild(el('span', 'meta', meta.join(' \u00b7 ')));
    sec.appendChild(h);
    var list = el('div', 'clients');
    var macs = Object.keys(r.clients).sort(function (a, b) {
      return (t(r.clients[b].updatedAt) || 0) - (t(r.clients[a].updatedAt) || 0);
    });
    macs.forEach(function (m) { list.appendChild(renderClient(r.clients[m])); });
    if (!macs.length) list.appendChild(el('div', 'empty', 'no clients yet'));
    sec.appendChild(list);
    return sec;
  }

  var pending = false;
  function render() {
    if (pending) return;
    pending = true;
    (window.requestAnimationFrame || setTimeout)(function () {
      pending = false;
      var main = document.getElementById('relays');
      main.textContent = '';
      var ids = Object.keys(relays).sort();
      ids.forEach(function (id) { main.appendChild(renderRelay(id, relays[id])); });
      if (!ids.length) main.appendChild(el('div', 'empty', broker ? 'no relay has published under ' + prefix + '/ yet' : 'waiting for the relay'));
      var ev = document.getElementById('events');
      ev.textContent = '';
      if (!events.length) ev.appendChild(el('div', 'empty', 'no events yet'));
      for (var i = events.length - 1; i >= 0 && i >= events.length - 100; i--) {
        var e = events[i];
        var line = [e.ts ? e.ts.slice(11, 23) : '', e._agent && e._agent !== LOCAL ? e._agent : '', e.type, e.mac || '', e.file || '', e.error || e.detail || e.reason || '']
          .filter(Boolean).join('  ');
        ev.appendChild(el('div', /fail|error|nak/.test(e.type || '') ? 'err' : null, line));
      }
    }, 16);
  }
  setInterval(function () {
    // elapsed time of running phases
    for (var id in relays) for (var m in relays[id].clients) {
      var p = relays[id].clients[m].phase;
      if (p !== 'booted' && p !== 'failed') { render(); return; }
    }
  }, 1000);

  function setConn(on, text) {
    var c = document.getElementById('conn');
    c.className = on ? 'on' : 'off';
    c.textContent = text;
  }
  function addEvent(agent, e) {
    if (!e || typeof e !== 'object') return;
    e._agent = agent;
    events.push(e);
    if (events.length > 200) events.splice(0, events.length - 200);
  }
  function setClient(agent, st) {
    if (st && typeof st === 'object' && st.mac) relay(agent).clients[st.mac] = st;
  }

  // ------------------------------------------------------------ local feed
  function local() {
    var delay = 500;
    function getJson(path) {
      return fetch(path, { cache: 'no-store' }).then(function (r) {
        if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
        return r.json();
      });
    }
    function connect() {
      Promise.all([getJson('/api/status'), getJson('/api/clients')]).then(function (res) {
        var st = res[0] || {};
        if (st.agentId && localId === LOCAL) { localId = st.agentId; delete relays[LOCAL]; }
        var r = relay(localId);
        r.status = st;
        r.clients = {};
        var list = Array.isArray(res[1]) ? res[1] : (res[1] && res[1].clients) || [];
        list.forEach(function (c) { setClient(localId, c); });
        render();
        openWs();
      }).catch(function (err) {
        setConn(false, 'relay unreachable: ' + err.message);
        retry();
      });
    }
    function retry() {
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    }
    function openWs() {
      var ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/events');
      var poll = null;
      ws.onopen = function () {
        delay = 500;
        setConn(true, 'live');
        // the feed carries clients and events; the relay's status is refreshed now and then
        poll = setInterval(function () {
          getJson('/api/status').then(function (st) { relay(localId).status = st; render(); }).catch(function () {});
        }, 10000);
      };
      ws.onmessage = function (m) {
        var msg;
        try { msg = JSON.parse(m.data); } catch (e) { return; }
        if (!msg || typeof msg !== 'object') return;
        if (msg.kind === 'client') setClient(localId, msg.state);
        else if (msg.kind === 'event') addEvent(localId, msg.event);
        else if (msg.kind === 'status') relay(localId).status = msg.status;
        render();
      };
      ws.onclose = function () { clearInterval(poll); setConn(false, 'disconnected, retrying'); retry(); };
    }
    connect();
  }

  // ------------------------------------------------------------ remote feed (MQTT over WebSocket)
  function remote() {
    var delay = 500;
    document.getElementById('mode').textContent = 'fleet on ' + broker + ' under ' + prefix + '/';
    function connect() {
      createMqttWsClient(window.WebSocket, broker, {
        topics: [prefix + '/+/status', prefix + '/+/clients/+', prefix + '/+/events'],
        username: params.get('user') || undefined,
        password: params.get('pass') || undefined,
      }, {
        connect: function () { delay = 500; setConn(true, 'broker connected'); },
        message: function (topic, text, retain) {
          if (topic.indexOf(prefix + '/') !== 0) return;
          var parts = topic.slice(prefix.length + 1).split('/');
          var agent = parts[0];
          if (!agent) return;
          var v = null;
          if (text) { try { v = JSON.parse(text); } catch (e) { return; } }
          if (parts[1] === 'status' && parts.length === 2) { if (v) relay(agent).status = v; }
          else if (parts[1] === 'clients' && parts.length === 3) {
            if (v) setClient(agent, v); else delete relay(agent).clients[parts[2]];
          } else if (parts[1] === 'events' && parts.length === 2 && !retain) addEvent(agent, v);
          render();
        },
        close: function (reason) {
          setConn(false, 'broker: ' + reason + ', retrying');
          setTimeout(connect, delay);
          delay = Math.min(delay * 2, 10000);
        },
      });
    }
    connect();
  }

  document.getElementById('mode').textContent = broker ? '' : 'local relay';
  render();
  if (broker) remote(); else local();
})();
`;

export const DASHBOARD_HTML = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>bootrelay dashboard</title>
<style>${CSS}</style>
</head>
<body>
<header><h1>bootrelay</h1><span id="mode" class="dim"></span><span id="conn" class="off">connecting</span></header>
<main>
<div id="relays"></div>
<h3 style="margin:0">Events</h3>
<div id="events"></div>
</main>
<script>
${MQTT_WS_JS}
${APP_JS}
</script>
</body>
</html>
`;
