/*
 * lastseen dashboard: plain JavaScript, no dependencies, served by the daemon
 * itself (web/ is embedded in the binary), so it works without internet.
 *
 * Data comes from the daemon's HTTP API (docs/api.md):
 *   GET /api/v1/stats                      fleet counts, activities, lastSeq
 *   GET /api/v1/stats/history              a sample every 10 s for the last hour
 *   GET /api/v1/devices?active=false&q=    the inactive devices, paged, searchable
 *   GET /api/v1/devices/{id}               one device
 *   GET /api/v1/events/recent              the newest events (of one device)
 *   GET /api/v1/events/stream              Server-Sent Events, when the daemon has it
 *
 * Live updates: while the event stream is open, each event updates the feed
 * at once and asks for fresh counts; when the stream is missing or down, the
 * page polls /api/v1/stats every second and fetches new events when lastSeq
 * moves.  Either way the page works; the pill in the header says which.  The
 * stream is read with fetch(), not EventSource, which cannot send a token.
 *
 * Credentials (docs/security.md): when the daemon answers 401, the page asks
 * for an API token (scope read) once, keeps it in sessionStorage (this tab,
 * until it closes) and sends it as a bearer token with every request; a
 * token that is refused or lacks the scope is asked for again.  Requests go
 * with credentials: 'omit', so that the browser never shows its own login
 * dialog for the daemon's Basic challenge.
 *
 * Everything the page shows from the daemon (ids, types, numbers) goes in
 * through textContent or attributes, never as HTML: ids are user input.
 *
 * The fetching runs as a few named jobs (stats, history, list, feed,
 * device, deviceEvents), each due every so often or when marked dirty by
 * something that happened, never more than one of a kind in flight.
 */
'use strict';

(function () {
  const PAGE_SIZE = 20;
  const ALL_MAX = 1000; // up to this many inactive devices are fetched whole and sorted
  const FEED_MAX = 100;
  const HOUR_MS = 3600 * 1000;
  const SSE_RETRY_MS = 30000;   // the stream was refused (404, 503): ask again this much later
  const SSE_RECONNECT_MS = 1000; // it ended or failed: reconnect (its retry: field may change it)
  const FETCH_TIMEOUT_MS = 5000;
  const TOKEN_KEY = 'lastseen.token';
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const S = {
    mode: 'connecting', // sse | polling | offline | starting
    skew: 0,            // server wall clock minus ours, ms
    stats: null,
    rate: null,         // activities per second
    prev: null,         // {t, activities} for the rate
    history: [],
    live: null,         // the counts now, the chart's last point
    list: {q: '', mode: null, all: null, cursors: [''], page: 0, rows: null, next: null, token: 0},
    feed: [],
    device: null,       // {id, data, missing, events, older, key}
    route: {name: 'overview'},
    es: null,           // the event stream: {open, ctl}
    token: null,        // the API token, when the daemon asks for one
    locked: false,      // waiting for a token: the jobs pause
  };
  try { S.token = sessionStorage.getItem(TOKEN_KEY); } catch (e) { S.token = null; }

  // ---------------------------------------------------------------- helpers

  const $ = (id) => document.getElementById(id);

  /* el('a', {class: 'x', href: h}, 'text', child...): attributes set with
   * setAttribute, children appended (strings become text nodes). */
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === 'class') e.className = v;
      else e.setAttribute(k, String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  function svg(tag, attrs) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }

  function query(params) {
    const parts = [];
    for (const [k, v] of Object.entries(params)) {
      if (v === undefined || v === null || v === '') continue;
      parts.push(encodeURIComponent(k) + '=' + encodeURIComponent(String(v)));
    }
    return parts.length ? '?' + parts.join('&') : '';
  }

  const devHref = (id) => '#/device/' + encodeURIComponent(id);
  const devLink = (id) => el('a', {href: devHref(id), class: 'dev'}, id);
  const serverNow = () => Date.now() + S.skew;
  const nf = new Intl.NumberFormat('en-US');
  const num = (n) => (typeof n === 'number' && isFinite(n) ? nf.format(n) : '–');
  const pad = (n, w) => String(n).padStart(w || 2, '0');

  function fmtTime(ms) {
    if (!ms) return 'never';
    const d = new Date(ms);
    const t = pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
    const today = new Date(serverNow());
    if (d.toDateString() === today.toDateString()) return t;
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' + t;
  }

  /* 950 ms, 42 s, 3 min 20 s, 2 h 5 min, 3 d 4 h; exact: 1.5 s rather than 1 s */
  function fmtDur(ms, exact) {
    if (typeof ms !== 'number' || !isFinite(ms)) return '–';
    if (ms < 0) ms = 0;
    if (ms < 1000) return Math.round(ms) + ' ms';
    if (exact && ms < 60000 && ms % 1000) return (ms / 1000).toFixed(ms % 100 ? 3 : 1) + ' s';
    let s = Math.floor(ms / 1000);
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d) return d + ' d' + (h ? ' ' + h + ' h' : '');
    if (h) return h + ' h' + (m ? ' ' + m + ' min' : '');
    if (m) return m + ' min' + (s ? ' ' + s + ' s' : '');
    return s + ' s';
  }

  /* A device's effective timeout, and where it comes from (docs/api.md). */
  function fmtTimeout(d) {
    return typeof d.inactivityTimeout === 'number' ? fmtDur(d.inactivityTimeout, true) : 'none';
  }
  const SOURCES = {
    device: 'set on this device',
    c8y_RequiredAvailability: 'from its c8y_RequiredAvailability',
    type: 'from its device type',
    default: 'the daemon\u2019s default (state.default_inactivity_timeout)',
  };
  function timeoutSource(d) {
    if (typeof d.inactivityTimeout !== 'number') return 'not monitored, or in maintenance';
    return SOURCES[d.inactivityTimeoutSource] || String(d.inactivityTimeoutSource);
  }

  const isoTitle = (ms) => (ms ? new Date(ms).toISOString() + ' (' + ms + ')' : '');

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.detail) || 'HTTP ' + status);
      this.status = status;
      this.body = body;
    }
  }

  function headers(accept) {
    const h = {Accept: accept};
    if (S.token) h.Authorization = 'Bearer ' + S.token;
    return h;
  }

  async function api(path) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
    try {
      const r = await fetch(path, {signal: ctl.signal, cache: 'no-store', credentials: 'omit',
                                   headers: headers('application/json')});
      let body = null;
      try { body = await r.json(); } catch (e) { body = null; }
      if (r.status === 401 || r.status === 403) askToken(r.status, body);
      if (!r.ok) throw new ApiError(r.status, body);
      return body;
    } finally {
      clearTimeout(timer);
    }
  }

  // ---------------------------------------------------------------- the token

  /* The daemon refused the request: ask for a token (again), once. */
  function askToken(status, body) {
    if (S.locked) return;
    S.locked = true;
    setMode('locked');
    stopStream();
    const had = S.token;
    const msg = status === 403
      ? 'This token lacks the read scope: ' + ((body && body.detail) || 'forbidden') + '.'
      : had ? 'The token was refused (unknown or revoked).'
            : 'This lastseen asks for an API token with the read scope.';
    $('auth-msg').textContent = msg;
    $('auth').hidden = false;
    $('auth-token').value = '';
    $('auth-token').focus();
  }

  function useToken(ev) {
    ev.preventDefault();
    const t = $('auth-token').value.trim();
    if (!t) return;
    S.token = t;
    try { sessionStorage.setItem(TOKEN_KEY, t); } catch (e) { /* private mode: this page only */ }
    $('auth').hidden = true;
    S.locked = false;
    setMode('connecting');
    for (const name of Object.keys(jobs)) mark(name);
    startStream();
    pump();
  }

  // ---------------------------------------------------------------- jobs

  const jobs = {};

  /* every(): ms between runs (Infinity: only when marked); when(): whether it
   * applies now; a marked job runs at most once per minGap ms. */
  function job(name, every, run, when, minGap) {
    jobs[name] = {every, run, when: when || (() => true), minGap: minGap || 200, last: 0, dirty: true, busy: false};
  }

  function mark(name) {
    if (jobs[name]) jobs[name].dirty = true;
  }

  function pump() {
    if (S.locked) return;
    const now = Date.now();
    for (const [name, j] of Object.entries(jobs)) {
      if (j.busy || !j.when()) continue;
      const gap = now - j.last;
      if (!(j.dirty && gap >= j.minGap) && gap < j.every()) continue;
      j.busy = true;
      j.dirty = false;
      j.last = now;
      Promise.resolve().then(j.run).then(() => { if (S.mode === 'offline') setMode(modeWhenUp()); setBanner(null); },
        (e) => onError(name, e)).finally(() => { j.busy = false; });
    }
  }

  function modeWhenUp() {
    return S.es && S.es.open ? 'sse' : 'polling';
  }

  function onError(name, e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) return; // askToken()
    if (e instanceof ApiError && e.status === 503 && e.body && e.body.error === 'starting') {
      setMode('starting');
      api('/healthz').then(() => {}, (h) => {
        const n = h.body && h.body.devicesLoaded;
        setBanner('lastseen is starting: ' + num(n) + ' devices loaded so far…', 'info');
      });
      return;
    }
    if (e instanceof ApiError) {
      if (name === 'device' && e.status === 404) return; // handled by the job
      setBanner('The daemon answered ' + e.status + ': ' + e.message, 'error');
      return;
    }
    setMode('offline');
    setBanner('Cannot reach lastseen at ' + location.host + '; retrying…', 'error');
  }

  function setBanner(text, kind) {
    const b = $('banner');
    if (!text) { b.hidden = true; return; }
    b.textContent = text;
    b.dataset.kind = kind || 'info';
    b.hidden = false;
  }

  function setMode(mode) {
    if (S.mode === mode) return;
    S.mode = mode;
    const c = $('conn');
    c.dataset.mode = mode;
    c.textContent = {sse: 'live', polling: 'polling · 1 s', offline: 'offline', starting: 'starting',
                     connecting: 'connecting', locked: 'token needed'}[mode] || mode;
    c.title = {sse: 'Updates arrive over the event stream (/api/v1/events/stream)',
               polling: 'No event stream: the page polls /api/v1/stats every second'}[mode] || '';
  }

  // ---------------------------------------------------------------- stats and chart

  async function loadStats() {
    const st = await api('/api/v1/stats');
    const now = serverNow();
    if (S.prev && now > S.prev.t && st.activities >= S.prev.activities)
      S.rate = (st.activities - S.prev.activities) * 1000 / (now - S.prev.t);
    S.prev = {t: now, activities: st.activities};
    const old = S.stats;
    S.stats = st;
    S.live = {t: now, devices: st.devices, active: st.active, inactive: st.inactive};
    if (S.mode === 'starting' || S.mode === 'connecting') setMode(modeWhenUp());
    if (!old || old.inactive !== st.inactive || old.devices !== st.devices) mark('list');
    if (S.mode !== 'sse' && (!old || old.lastSeq !== st.lastSeq)) {
      mark('feed');
      mark('deviceEvents');
    }
    renderCards();
    drawChart();
  }

  function renderCards() {
    const st = S.stats;
    if (!st) return;
    $('c-devices').textContent = num(st.devices);
    $('c-active').textContent = num(st.active);
    $('c-inactive').textContent = num(st.inactive);
    $('c-sessions').textContent = num(st.sessions);
    $('c-rate').textContent = S.rate === null ? '–' : S.rate < 10 ? S.rate.toFixed(1) : num(Math.round(S.rate));
    if (S.route.name === 'overview') document.title = (st.inactive ? num(st.inactive) + ' inactive · ' : '') + 'lastseen';
  }

  async function loadHistory() {
    const t0 = Date.now();
    const h = await api('/api/v1/stats/history');
    const rtt = Date.now() - t0;
    S.skew = h.now.t - (t0 + rtt / 2);
    S.history = Array.isArray(h.samples) ? h.samples : [];
    if (!S.live || S.live.t < h.now.t) S.live = h.now;
    drawChart();
  }

  /* Grid step and top for values up to v: a step of 1, 2, 2.5 or 5 times a
   * power of ten (integers only), four or five steps high. */
  function niceScale(v) {
    const raw = Math.max(1, v / 4);
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    let step = p * 10;
    for (const m of [1, 2, 2.5, 5]) if (m * p >= raw && Number.isInteger(m * p)) { step = m * p; break; }
    return {step, top: Math.max(step, Math.ceil(v / step) * step)};
  }

  function drawChart() {
    const box = $('chart');
    if (!box || $('overview').hidden) return;
    const W = Math.max(box.clientWidth, 300), H = 220;
    const m = {l: 56, r: 14, t: 12, b: 26};
    const iw = W - m.l - m.r, ih = H - m.t - m.b;
    const now = serverNow(), x0 = now - HOUR_MS;
    const pts = S.history.filter((s) => s.t >= x0 && s.t <= now);
    if (S.live && S.live.t >= x0 && (!pts.length || S.live.t > pts[pts.length - 1].t)) pts.push(S.live);
    const scale = niceScale(Math.max(1, ...pts.map((p) => Math.max(p.active, p.inactive))));
    const ymax = scale.top;
    const X = (t) => m.l + (t - x0) / HOUR_MS * iw;
    const Y = (v) => m.t + ih - v / ymax * ih;

    const root = svg('svg', {width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, role: 'img',
                             'aria-label': 'Active and inactive devices over the last hour'});
    for (let v = 0; v <= ymax; v += scale.step) {
      const y = Y(v);
      root.append(svg('line', {x1: m.l, x2: W - m.r, y1: y, y2: y, class: 'grid'}));
      const lab = svg('text', {x: m.l - 8, y: y + 4, class: 'axis', 'text-anchor': 'end'});
      lab.textContent = num(v);
      root.append(lab);
    }
    const step = 10 * 60 * 1000;
    for (let t = Math.ceil(x0 / step) * step; t <= now; t += step) {
      const x = X(t);
      root.append(svg('line', {x1: x, x2: x, y1: m.t, y2: m.t + ih, class: 'grid v'}));
      const d = new Date(t);
      const lab = svg('text', {x: x, y: H - 8, class: 'axis', 'text-anchor': 'middle'});
      lab.textContent = pad(d.getHours()) + ':' + pad(d.getMinutes());
      root.append(lab);
    }
    if (pts.length) {
      const line = (key) => pts.map((p, i) => (i ? 'L' : 'M') + X(p.t).toFixed(1) + ' ' + Y(p[key]).toFixed(1)).join(' ');
      const area = line('active') + ' L' + X(pts[pts.length - 1].t).toFixed(1) + ' ' + Y(0) +
                   ' L' + X(pts[0].t).toFixed(1) + ' ' + Y(0) + ' Z';
      root.append(svg('path', {d: area, class: 'area ok'}));
      root.append(svg('path', {d: line('active'), class: 'line ok'}));
      root.append(svg('path', {d: line('inactive'), class: 'line bad'}));
      const last = pts[pts.length - 1];
      root.append(svg('circle', {cx: X(last.t), cy: Y(last.active), r: 3, class: 'dot ok'}));
      root.append(svg('circle', {cx: X(last.t), cy: Y(last.inactive), r: 3, class: 'dot bad'}));
    }
    if (pts.length < 2) {
      const t = svg('text', {x: m.l + iw / 2, y: m.t + ih / 2, class: 'axis note', 'text-anchor': 'middle'});
      t.textContent = 'The daemon takes a sample every 10 s; the chart fills in as they come.';
      root.append(t);
    }
    // Hover: the nearest sample's values.
    const cursor = svg('line', {x1: 0, x2: 0, y1: m.t, y2: m.t + ih, class: 'cursor', visibility: 'hidden'});
    const tip = svg('text', {x: m.l + 6, y: m.t + 12, class: 'tip', visibility: 'hidden'});
    const hit = svg('rect', {x: m.l, y: m.t, width: iw, height: ih, class: 'hit'});
    hit.addEventListener('mousemove', (ev) => {
      if (!pts.length) return;
      const r = root.getBoundingClientRect();
      const t = x0 + (ev.clientX - r.left - m.l) / iw * HOUR_MS;
      let best = pts[0];
      for (const p of pts) if (Math.abs(p.t - t) < Math.abs(best.t - t)) best = p;
      cursor.setAttribute('x1', X(best.t));
      cursor.setAttribute('x2', X(best.t));
      cursor.setAttribute('visibility', 'visible');
      tip.textContent = fmtTime(best.t) + ' · ' + num(best.active) + ' active · ' + num(best.inactive) + ' inactive';
      tip.setAttribute('visibility', 'visible');
    });
    hit.addEventListener('mouseleave', () => {
      cursor.setAttribute('visibility', 'hidden');
      tip.setAttribute('visibility', 'hidden');
    });
    root.append(cursor, tip, hit);
    box.replaceChildren(root);
  }

  // ---------------------------------------------------------------- inactive devices

  /*
   * The inactive devices.  While there are at most ALL_MAX of them (the usual
   * case), the page fetches them all and sorts them newest alarm first, so a
   * device that just went silent is at the top.  Beyond that it pages through
   * the daemon's cursor (table order; each page sorted on its own).  A search
   * may need several requests to fill a page: each scans a bounded part of
   * the table.
   */
  async function fetchInactive(after, want, maxRequests) {
    let rows = [], next = null, requests = 0;
    do {
      const res = await api('/api/v1/devices' + query({active: 'false', limit: Math.min(want - rows.length, 1000),
                                                       after: after, q: S.list.q}));
      rows = rows.concat(res.devices || []);
      next = res.next;
      after = next;
      requests++;
    } while (next && rows.length < want && requests < maxRequests);
    return {rows, next};
  }

  const byAlarm = (a, b) => b.inactivityAlarmTime - a.inactivityAlarmTime || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

  async function loadList() {
    const L = S.list;
    const token = ++L.token;
    if (S.stats && S.stats.inactive <= ALL_MAX) {
      const all = await fetchInactive('', ALL_MAX + 1, 20);
      if (token !== L.token) return; // a newer search or page replaced this one
      if (!all.next) {
        if (L.mode !== 'all') { L.page = 0; L.cursors = ['']; }
        L.mode = 'all';
        L.all = all.rows.sort(byAlarm);
        L.page = Math.min(L.page, Math.max(0, Math.ceil(L.all.length / PAGE_SIZE) - 1));
        L.rows = L.all.slice(L.page * PAGE_SIZE, (L.page + 1) * PAGE_SIZE);
        L.next = (L.page + 1) * PAGE_SIZE < L.all.length ? 'page' : null;
        renderList();
        return;
      }
    }
    if (L.mode !== 'cursor') { L.page = 0; L.cursors = ['']; }
    L.mode = 'cursor';
    L.all = null;
    const res = await fetchInactive(L.cursors[L.page], PAGE_SIZE, 50);
    if (token !== L.token) return;
    L.rows = res.rows.sort(byAlarm);
    L.next = res.next;
    renderList();
  }

  function renderList() {
    const L = S.list;
    if (!L.rows) return;
    const now = serverNow();
    const body = $('inactive-rows');
    body.replaceChildren(...L.rows.map((d) => {
      const since = d.inactivityAlarmTime;
      return el('tr', null,
        el('td', null, devLink(d.id)),
        el('td', {title: isoTitle(since)}, since ? fmtTime(since) : 'no activity yet'),
        el('td', {class: 'num'}, since ? fmtDur(now - since) : '–'),
        el('td', {class: 'num', title: timeoutSource(d)},
           fmtTimeout(d) + (d.inactivityTimeoutSource === 'default' ? ' (default)' :
                            d.inactivityTimeoutSource === 'type' ? ' (type)' : '')));
    }));
    const empty = $('inactive-empty');
    empty.hidden = L.rows.length > 0;
    empty.textContent = L.q ? 'No inactive device id contains \u201c' + L.q + '\u201d.' :
                        L.page ? 'No more inactive devices.' : 'No inactive devices. Everything is reporting.';
    const first = L.page * PAGE_SIZE;
    let info = L.rows.length ? num(first + 1) + '–' + num(first + L.rows.length) : '';
    if (L.rows.length && L.all) info += ' of ' + num(L.all.length);
    else if (L.rows.length && !L.q && S.stats) info += ' of ' + num(S.stats.inactive);
    $('page-info').textContent = info;
    $('prev').disabled = L.page === 0;
    $('next').disabled = !L.next;
  }

  function listGo(page) {
    const L = S.list;
    if (page < 0 || (L.mode === 'cursor' && page > L.cursors.length - 1)) return;
    L.page = page;
    if (L.mode === 'all' && L.all) { // already here: show it now, refresh behind
      L.rows = L.all.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
      L.next = (page + 1) * PAGE_SIZE < L.all.length ? 'page' : null;
      renderList();
    }
    L.token++;
    mark('list');
    pump();
  }

  // ---------------------------------------------------------------- events feed

  /* Merges events into a newest-first list without duplicates, keeping max. */
  function mergeEvents(list, events, max) {
    const seen = new Set(list.map((e) => e.seq));
    for (const e of events) {
      if (!e || typeof e.seq !== 'number' || seen.has(e.seq)) continue;
      seen.add(e.seq);
      list.push(e);
    }
    list.sort((a, b) => b.seq - a.seq);
    if (list.length > max) list.length = max;
    return list;
  }

  async function loadFeed() {
    // Only what is newer than the newest shown (the newest 50 of them).
    const res = await api('/api/v1/events/recent' + query({limit: 50, after: S.feed.length ? S.feed[0].seq : null}));
    mergeEvents(S.feed, res.events || [], FEED_MAX);
    renderFeedSoon();
  }

  const BADGE = {
    ACTIVITY_EVENT: ['active', 'ok'], INACTIVITY_EVENT: ['inactive', 'bad'],
    CONNECT_EVENT: ['connect', 'info'], DISCONNECT_EVENT: ['disconnect', 'muted'],
    ALARM_RAISED: ['alarm', 'bad'], ALARM_UPDATED: ['alarm updated', 'muted'], ALARM_CLEARED: ['alarm cleared', 'ok'],
    SOURCE_DOWN: ['source down', 'bad'], SOURCE_UP: ['source up', 'ok'], AUDIT: ['audit', 'info'],
  };

  function badge(type) {
    const b = BADGE[type] || [String(type), 'muted'];
    return el('span', {class: 'badge ' + b[1], title: String(type)}, b[0]);
  }

  /* One line about what the event means, from its own fields. */
  function eventDetail(e) {
    const st = e.state;
    switch (e.type) {
      case 'INACTIVITY_EVENT':
        return st ? 'silent for ' + fmtDur(e.ts - st.lastActivityTime) + ', detected +' +
                    fmtDur(e.detectedAt - e.ts) : '';
      case 'ACTIVITY_EVENT':
        if (!st) return '';
        return st.inactivityAlarmTime ? 'back after ' + fmtDur(e.ts - st.inactivityAlarmTime) + ' inactive'
                                      : 'first activity';
      case 'CONNECT_EVENT': return st ? st.sessions + ' open session' + (st.sessions === 1 ? '' : 's') : '';
      case 'DISCONNECT_EVENT': return 'last session closed';
      case 'ALARM_RAISED':
      case 'ALARM_UPDATED':
      case 'ALARM_CLEARED': {
        const a = e.alarm;
        if (!a || typeof a !== 'object') return '';
        return [a.severity, a.status, a.count > 1 ? a.count + ' times' : null].filter(Boolean).join(' · ').toLowerCase();
      }
      case 'SOURCE_DOWN': return 'input not heard: its devices are held';
      case 'SOURCE_UP': return 'input heard again';
      case 'AUDIT': {
        const a = e.audit;
        if (!a || typeof a !== 'object') return '';
        return String(a.action) + ' by ' + (a.who === null ? 'no credential' : String(a.who));
      }
      default: return '';
    }
  }

  let feedTimer = null;
  function renderFeedSoon() {
    if (feedTimer) return;
    feedTimer = setTimeout(() => { feedTimer = null; renderFeed(); }, 150);
  }

  function renderFeed() {
    const items = S.feed.map((e) => el('li', null,
      el('time', {title: isoTitle(e.ts)}, fmtTime(e.ts)),
      badge(e.type),
      e.source || (e.audit && !/^device\./.test(e.audit.action)) ? el('span', {class: 'dev'}, String(e.device))
                                                                    : devLink(String(e.device)),
      el('span', {class: 'detail'}, eventDetail(e))));
    $('feed').replaceChildren(...items);
    $('feed-empty').hidden = items.length > 0;
  }

  // ---------------------------------------------------------------- the event stream

  /* The event stream, read with fetch(): frames of "field: value" lines
   * ended by a blank line (id, event, data, retry; ':' starts a comment).
   * It reconnects with Last-Event-ID after an end or a network error, as
   * EventSource would; a refusal (404: a daemon without the stream, 503:
   * http.max_streams reached) waits SSE_RETRY_MS. */
  function startStream() {
    stopStream();
    if (!window.fetch || !window.ReadableStream || !window.TextDecoder) { setMode('polling'); return; }
    const st = {open: false, ctl: null, lastId: null, retry: SSE_RECONNECT_MS};
    S.es = st;
    (async () => {
      while (S.es === st) {
        let wait = st.retry;
        st.ctl = new AbortController();
        try {
          const h = headers('text/event-stream');
          if (st.lastId !== null) h['Last-Event-ID'] = st.lastId;
          const r = await fetch('/api/v1/events/stream', {headers: h, cache: 'no-store', credentials: 'omit',
                                                          signal: st.ctl.signal});
          if (r.status === 401 || r.status === 403) {
            let body = null;
            try { body = await r.json(); } catch (e) { body = null; }
            askToken(r.status, body);
            return; // useToken() starts another
          }
          if (!r.ok) wait = SSE_RETRY_MS; // no stream here (404), or none left (503)
          else if (r.body) await readStream(st, r.body.getReader());
        } catch (e) {
          // a network error, or stopStream(): either way, below
        }
        if (st.open) {
          st.open = false;
          if (S.mode === 'sse') setMode('polling');
        } else if (S.mode === 'connecting') {
          setMode('polling');
        }
        if (S.es !== st) return;
        await new Promise((ok) => setTimeout(ok, wait));
      }
    })();
  }

  function stopStream() {
    const st = S.es;
    S.es = null;
    if (st && st.ctl) st.ctl.abort();
  }

  async function readStream(st, reader) {
    const dec = new TextDecoder();
    let buf = '', data = [], id = null;
    for (;;) {
      const {value, done} = await reader.read();
      if (done || S.es !== st) return;
      if (!st.open) {
        st.open = true;
        setMode('sse');
        // Whatever happened before the stream opened: fetch it once.
        mark('stats'); mark('feed'); mark('list'); mark('device'); mark('deviceEvents');
        pump();
      }
      buf += dec.decode(value, {stream: true});
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        let line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') { // the frame's end
          if (id !== null) st.lastId = id;
          if (data.length) onStreamEvent(data.join('\n'));
          data = [];
          id = null;
          continue;
        }
        if (line[0] === ':') continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let v = colon < 0 ? '' : line.slice(colon + 1);
        if (v[0] === ' ') v = v.slice(1);
        if (field === 'data') data.push(v);
        else if (field === 'id') id = v;
        else if (field === 'retry' && /^\d+$/.test(v)) st.retry = Number(v);
      }
    }
  }

  function onStreamEvent(text) {
    let e;
    try { e = JSON.parse(text); } catch (err) { return; }
    if (!e || typeof e.seq !== 'number') return;
    mergeEvents(S.feed, [e], FEED_MAX);
    renderFeedSoon();
    mark('stats');
    if (e.type === 'INACTIVITY_EVENT' || e.type === 'ACTIVITY_EVENT') mark('list');
    const D = S.device;
    if (D && !e.source && !e.audit && e.device === D.id) {
      mergeEvents(D.events, [e], 1000);
      if (e.state) D.data = e.state;
      renderDevice();
      mark('device');
    }
  }

  // ---------------------------------------------------------------- device page

  async function loadDevice() {
    const D = S.device;
    if (!D) return;
    try {
      const d = await api('/api/v1/devices/' + encodeURIComponent(D.id));
      if (S.device !== D) return;
      const key = [d.active, d.inactivityAlarmTime, d.lastConnectTime, d.lastDisconnectTime, d.sessions,
                   JSON.stringify(d.c8y_ActiveAlarmsStatus || null)].join();
      if (D.key !== undefined && key !== D.key) mark('deviceEvents');
      D.key = key;
      D.data = d;
      D.missing = null;
    } catch (e) {
      if (!(e instanceof ApiError) || (e.status !== 404 && e.status !== 422)) throw e;
      if (S.device !== D) return;
      D.data = null;
      D.missing = e.status === 404 ? 'No device with this id: it was never seen, or it was deleted.'
                                   : 'This is not a valid device id.';
    }
    renderDevice();
  }

  async function loadDeviceEvents(older) {
    const D = S.device;
    if (!D || D.missing) return;
    const res = await api('/api/v1/events/recent' + query({device: D.id, limit: 20,
                                                           before: older ? D.older : null}));
    if (S.device !== D) return;
    mergeEvents(D.events, res.events || [], 1000);
    if (older || D.older === undefined) D.older = res.next;
    renderDevice();
  }

  function fact(label, value, note) {
    return [el('dt', null, label), el('dd', null, value, note ? el('span', {class: 'note'}, note) : null)];
  }

  function renderDevice() {
    const D = S.device;
    if (!D || $('device').hidden) return;
    $('d-id').textContent = D.id;
    const missing = $('d-missing');
    missing.hidden = !D.missing;
    missing.textContent = D.missing || '';
    const d = D.data;
    const state = $('d-state');
    state.hidden = !d;
    const facts = [];
    if (d) {
      const now = serverNow();
      state.textContent = d.active ? 'active' : 'inactive';
      state.className = 'badge big ' + (d.active ? 'ok' : 'bad');
      facts.push(...fact('Last activity', fmtTime(d.lastActivityTime),
                         d.lastActivityTime ? fmtDur(now - d.lastActivityTime) + ' ago' : null));
      facts.push(...fact('Inactivity timeout', fmtTimeout(d), timeoutSource(d)));
      if (d.active && typeof d.inactivityTimeout === 'number') {
        const deadline = d.lastActivityTime + d.inactivityTimeout;
        facts.push(...fact('Goes inactive at', fmtTime(deadline),
                           deadline > now ? 'in ' + fmtDur(deadline - now) + ' unless it reports' : 'now'));
      }
      let alarm, alarmNote = null;
      if (!d.active && d.inactivityAlarmTime) {
        alarm = 'raised at ' + fmtTime(d.inactivityAlarmTime);
        alarmNote = 'inactive for ' + fmtDur(now - d.inactivityAlarmTime);
      } else if (!d.active) {
        alarm = 'none';
        alarmNote = 'no activity yet';
      } else if (d.inactivityAlarmTime) {
        alarm = 'cleared';
        alarmNote = 'last raised at ' + fmtTime(d.inactivityAlarmTime);
      } else {
        alarm = 'never raised';
      }
      facts.push(...fact('Inactivity alarm', alarm, alarmNote));
      const avail = d.c8y_Availability && d.c8y_Availability.status;
      if (avail) facts.push(...fact('Availability', String(avail).toLowerCase(), 'c8y_Availability'));
      const alarms = d.c8y_ActiveAlarmsStatus;
      if (alarms && typeof alarms === 'object') {
        const open = Object.entries(alarms).map(([sev, n]) => num(n) + ' ' + sev);
        facts.push(...fact('Open alarms', open.length ? open.join(', ') : 'none', 'c8y_ActiveAlarmsStatus'));
      }
      facts.push(...fact('Sessions', num(d.sessions) + ' open',
                         'last connect ' + fmtTime(d.lastConnectTime) + ', last disconnect ' +
                         fmtTime(d.lastDisconnectTime)));
      facts.push(...fact('Type', d.type));
    }
    $('d-facts').replaceChildren(...facts);

    const rows = D.events.map((e) => el('tr', null,
      el('td', {title: isoTitle(e.ts)}, fmtTime(e.ts)),
      el('td', null, badge(e.type)),
      el('td', {class: 'detail'}, eventDetail(e))));
    $('d-events').replaceChildren(...rows);
    $('d-events-empty').hidden = rows.length > 0 || D.older === undefined;
    $('d-older').hidden = !D.older;
  }

  // ---------------------------------------------------------------- routing and start

  function route() {
    const h = location.hash;
    let r = {name: 'overview'};
    if (h.startsWith('#/device/')) {
      try {
        r = {name: 'device', id: decodeURIComponent(h.slice('#/device/'.length))};
      } catch (e) {
        r = {name: 'overview'};
      }
    }
    S.route = r;
    $('overview').hidden = r.name !== 'overview';
    $('device').hidden = r.name !== 'device';
    if (r.name === 'device') {
      if (!S.device || S.device.id !== r.id) S.device = {id: r.id, data: null, missing: null, events: [],
                                                          older: undefined, key: undefined};
      document.title = r.id + ' · lastseen';
      mark('device');
      mark('deviceEvents');
      renderDevice();
    } else {
      S.device = null;
      renderCards();
      renderList();
      renderFeed();
      drawChart();
    }
    window.scrollTo(0, 0);
    pump();
  }

  function everySecond() {
    const now = new Date(serverNow());
    $('clock').textContent = pad(now.getHours()) + ':' + pad(now.getMinutes()) + ':' + pad(now.getSeconds());
    if (S.route.name === 'overview') {
      renderList(); // the "for" column
      drawChart();  // the window slides
    } else {
      renderDevice();
    }
  }

  function start() {
    const sse = () => S.mode === 'sse';
    const onOverview = () => S.route.name === 'overview';
    const onDevice = () => S.route.name === 'device';
    job('stats', () => (sse() ? 5000 : 1000), loadStats);
    job('history', () => 10000, loadHistory, onOverview);
    job('list', () => 5000, loadList, () => onOverview() && S.stats !== null, 700); // the count picks the mode
    job('feed', () => (sse() ? Infinity : 5000), loadFeed, onOverview);
    job('device', () => (sse() ? 5000 : 1000), loadDevice, onDevice);
    job('deviceEvents', () => (sse() ? Infinity : 5000), () => loadDeviceEvents(false),
        () => onDevice() && S.device && !S.device.missing);

    let searchTimer = null;
    $('search').addEventListener('input', (ev) => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => {
        const L = S.list;
        L.q = ev.target.value.trim();
        L.cursors = [''];
        L.all = null;
        L.rows = L.rows || [];
        listGo(0);
      }, 250);
    });
    $('next').addEventListener('click', () => {
      const L = S.list;
      if (!L.next) return;
      if (L.mode === 'cursor') {
        L.cursors.length = L.page + 1;
        L.cursors.push(L.next);
      }
      listGo(L.page + 1);
    });
    $('prev').addEventListener('click', () => listGo(S.list.page - 1));
    $('auth-form').addEventListener('submit', useToken);
    $('d-older').addEventListener('click', () => {
      loadDeviceEvents(true).catch((e) => onError('deviceEvents', e));
    });
    window.addEventListener('hashchange', route);
    window.addEventListener('resize', () => drawChart());

    route();
    startStream();
    setInterval(pump, 200);
    setInterval(everySecond, 1000);
    everySecond();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
