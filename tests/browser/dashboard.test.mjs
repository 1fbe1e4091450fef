/*
 * The dashboard in a real browser: Debian's headless chromium driven by
 * playwright-core (no browser download), against the real daemon on a free
 * loopback port.  It loads the page, reads the counts, makes a device go
 * inactive and sees the counts, the inactive list and the feed follow within
 * seconds, searches and pages the list, opens the device page, checks that a
 * hostile id is shown as text, and saves screenshots (build/dashboard.png,
 * build/dashboard-device.png; SCREENSHOT_DIR changes where).  Live updates
 * come over the daemon's event stream; with the stream blocked, the page
 * falls back to polling and still follows the fleet.  With an API token in
 * the daemon's data directory, the page asks for one, refuses a wrong one,
 * then works with it (counts, live events over the stream) and keeps it for
 * the tab's session: a reload does not ask again, a new session does.
 *
 * Environment: LASTSEEN_BIN (default ../../build/lastseen), CHROMIUM
 * (default /usr/bin/chromium).  Every wait is bounded.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
const BIN = process.env.LASTSEEN_BIN || resolve(HERE, '../../build/lastseen');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.SCREENSHOT_DIR || resolve(HERE, '../../build');
const LIVE_MS = 3000; // "within a couple of seconds", with room for a loaded machine

let daemon, base, browser, workdir;

const cleanEnv = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LASTSEEN_')));

/* Starts lastseen on dataDir; resolves {proc, base} once it listens. */
function spawnDaemon(dataDir) {
  const args = ['--set', 'http.listen=127.0.0.1:0', '--set', `store.data_dir=${dataDir}`];
  const proc = spawn(BIN, args, { env: cleanEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '', url = null;
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error('no "listening on" within 10 s:\n' + stderr)), 10000);
    proc.stderr.on('data', (chunk) => {
      stderr += chunk;
      const m = /listening on ([0-9.]+):(\d+)/.exec(stderr);
      if (m && !url) {
        clearTimeout(timer);
        url = `http://${m[1]}:${m[2]}`;
        ok({ proc, base: url });
      }
    });
    proc.on('exit', (code) => fail(new Error(`lastseen exited ${code}:\n${stderr}`)));
  });
}

async function stopDaemon(proc) {
  if (!proc || proc.exitCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
  if (proc.exitCode === null) proc.kill('SIGKILL');
}

async function startDaemon() {
  workdir = mkdtempSync(join(tmpdir(), 'lastseen-browser-'));
  const d = await spawnDaemon(join(workdir, 'data'));
  base = d.base;
  return d.proc;
}

async function http(method, path, body) {
  const r = await fetch(base + path, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

const dev = (id) => '/api/v1/devices/' + encodeURIComponent(id);

async function waitFor(what, fn, timeoutMs) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > end) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

before(async () => {
  daemon = await startDaemon();
  await waitFor('/healthz', async () => (await http('GET', '/healthz').catch(() => ({}))).status === 200, 10000);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  if (browser) await browser.close();
  await stopDaemon(daemon);
  if (workdir) rmSync(workdir, { recursive: true, force: true });
});

/* A page that fails the test on any uncaught error or unexpected console error. */
async function openPage(path) {
  const page = await browser.newPage({ viewport: { width: 1360, height: 1000 } });
  const problems = [];
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => {
    // The event stream may be missing from this daemon (404): the page falls back to polling.
    if (m.type() === 'error' && !/events\/stream|404/.test(m.text() + (m.location().url || '')))
      problems.push('console error: ' + m.text());
  });
  await page.goto(base + path);
  return { page, problems };
}

const text = (page, sel) => page.locator(sel).innerText();

test('counts, going inactive live, search, paging, device page, screenshots', async () => {
  // 23 devices that are already inactive (1 ms timeout, one activity each).
  for (let i = 0; i < 23; i++) {
    const id = `bulk-${String(i).padStart(2, '0')}`;
    assert.equal((await http('PUT', dev(id), { inactivityTimeout: 1 })).status, 201);
    assert.equal((await http('POST', dev(id) + '/activity')).status, 202);
  }
  // 5 healthy devices and one that will go silent.
  const evil = '<img src=x onerror="window.__xss=1">&amp;';
  for (const id of ['pump-1', 'pump-2', 'meter-1', 'meter-2', evil])
    assert.equal((await http('POST', dev(id) + '/activity')).status, 202);
  assert.equal((await http('PUT', dev('victim'), { inactivityTimeout: 4000 })).status, 201);
  assert.equal((await http('POST', dev('victim') + '/activity')).status, 202);

  const { page, problems } = await openPage('/');
  await waitFor('the counts', async () => (await text(page, '#c-devices')) === '29', 5000);
  assert.equal(await text(page, '#c-active'), '6');
  assert.equal(await text(page, '#c-inactive'), '23');
  // The inactive list: a page of 20 of the 23, newest alarm first, pager on.
  await waitFor('the inactive list', async () => (await page.locator('#inactive-rows tr').count()) === 20, 5000);
  assert.match(await text(page, '#page-info'), /^1–20 of 23$/);
  assert.equal(await page.locator('#next').isDisabled(), false);
  await page.click('#next');
  await waitFor('page 2', async () => (await page.locator('#inactive-rows tr').count()) === 3, 5000);
  assert.match(await text(page, '#page-info'), /^21–23 of 23$/);
  await page.click('#prev');
  await waitFor('page 1 again', async () => (await page.locator('#inactive-rows tr').count()) === 20, 5000);
  // The feed has the INACTIVITY events of the bulk devices, as links to their pages.
  await waitFor('the feed', async () => (await page.locator('#feed li').count()) > 0, 5000);
  assert.ok((await page.locator('#feed a[href="#/device/bulk-22"]').count()) >= 1);

  // The victim goes silent: the page follows within seconds of the alarm.
  const victim = await waitFor('victim inactive', async () => {
    const d = (await http('GET', dev('victim'))).body;
    return d.active ? null : d;
  }, 10000);
  await waitFor('inactive count 24', async () => (await text(page, '#c-inactive')) === '24', LIVE_MS);
  await waitFor('active count 5', async () => (await text(page, '#c-active')) === '5', LIVE_MS);
  await waitFor('victim in the list', async () =>
    (await page.locator('#inactive-rows a[href="#/device/victim"]').count()) === 1, LIVE_MS);
  await waitFor('victim in the feed', async () =>
    (await page.locator('#feed li', { has: page.locator('a[href="#/device/victim"]') })
      .filter({ hasText: 'inactive' }).count()) >= 1, LIVE_MS);
  const shownAt = Date.now();
  assert.ok(shownAt - victim.inactivityAlarmTime < 2 * LIVE_MS,
            `the page showed the alarm ${shownAt - victim.inactivityAlarmTime} ms after it was raised`);
  const row = page.locator('#inactive-rows tr', { has: page.locator('a[href="#/device/victim"]') });
  assert.match(await row.innerText(), /4 s/); // its own timeout

  // Search: substring, case-insensitive, served by the daemon (q=).
  await page.fill('#search', 'VICT');
  await waitFor('search result', async () => (await page.locator('#inactive-rows tr').count()) === 1, 5000);
  assert.equal(await page.locator('#inactive-rows a').innerText(), 'victim');
  await page.fill('#search', 'no-such-device');
  await waitFor('empty search', async () => !(await page.locator('#inactive-empty').isHidden()), 5000);
  assert.match(await text(page, '#inactive-empty'), /no-such-device/);
  await page.fill('#search', '');
  await waitFor('search cleared', async () => (await page.locator('#inactive-rows tr').count()) === 20, 5000);

  // The chart is drawn (the daemon's first sample plus the live point).
  await waitFor('chart', async () => (await page.locator('#chart svg path.line').count()) === 2, 5000);
  await page.screenshot({ path: join(SHOTS, 'dashboard.png'), fullPage: true });

  // The device page, from the list.
  await page.click('#inactive-rows a[href="#/device/victim"]');
  await waitFor('device page', async () => (await text(page, '#d-state')) === 'inactive', 5000);
  assert.equal(await text(page, '#d-id'), 'victim');
  const facts = await text(page, '#d-facts');
  assert.match(facts, /Inactivity timeout\s+4 s\s*set on this device/);
  assert.match(facts, /Inactivity alarm\s+raised at/);
  // Its events, newest first: INACTIVITY after the first ACTIVITY (with the
  // unavailability alarm it raised, when the daemon has alarms).
  await waitFor('its events', async () => /inactive[\s\S]*first activity/.test(await text(page, '#d-events')), 5000);
  // It reports again: the page follows.
  assert.equal((await http('POST', dev('victim') + '/activity')).status, 202);
  await waitFor('device active again', async () => (await text(page, '#d-state')) === 'active', LIVE_MS);
  await waitFor('alarm cleared', async () => /Inactivity alarm\s+cleared/.test(await text(page, '#d-facts')), LIVE_MS);
  await waitFor('the new event', async () => /back after \d+ s inactive/.test(await text(page, '#d-events')), LIVE_MS);
  await page.screenshot({ path: join(SHOTS, 'dashboard-device.png'), fullPage: true });

  // A hostile id is text, on the list, in the feed and on its own page.
  await page.goto(base + '/#/device/' + encodeURIComponent(evil));
  await waitFor('evil device page', async () => (await text(page, '#d-state')) === 'active', 5000);
  assert.equal(await text(page, '#d-id'), evil);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.equal(await page.locator('main img').count(), 0);

  // An unknown device.
  await page.goto(base + '/#/device/' + encodeURIComponent('never-seen'));
  await waitFor('missing device', async () => !(await page.locator('#d-missing').isHidden()), 5000);
  assert.match(await text(page, '#d-missing'), /No device with this id/);

  assert.deepEqual(problems, []);
  await page.close();
});

test('live updates over the event stream, and by polling when the stream cannot be had', async () => {
  // With the daemon's stream: the page says "live" and events arrive over it.
  const live = await openPage('/');
  await waitFor('live mode', async () =>
    (await live.page.locator('#conn').getAttribute('data-mode')) === 'sse', 5000);
  assert.equal((await live.page.locator('#conn').innerText()), 'live');
  assert.equal((await http('PUT', dev('streamed'), { inactivityTimeout: 1500 })).status, 201);
  assert.equal((await http('POST', dev('streamed') + '/activity')).status, 202);
  await waitFor('streamed ACTIVITY_EVENT', async () =>
    (await live.page.locator('#feed li', { has: live.page.locator('a[href="#/device/streamed"]') })
      .filter({ hasText: 'first activity' }).count()) === 1, LIVE_MS);
  await waitFor('streamed INACTIVITY_EVENT', async () =>
    (await live.page.locator('#feed li', { has: live.page.locator('a[href="#/device/streamed"]') })
      .filter({ hasText: 'inactive' }).count()) === 1, 1500 + LIVE_MS);
  assert.deepEqual(live.problems, []);
  await live.page.close();

  // Without it (a proxy that does not pass it, an older daemon): the page
  // says it polls, and still follows the fleet.
  const page = await browser.newPage({ viewport: { width: 1360, height: 1000 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  let streamAsked = 0;
  await page.route('**/api/v1/events/stream*', (route) => {
    streamAsked++;
    return route.fulfill({ status: 404, contentType: 'application/json', body: '{"error":"not_found"}' });
  });
  await page.goto(base + '/');
  await waitFor('polling mode', async () => (await page.locator('#conn').getAttribute('data-mode')) === 'polling', 5000);
  assert.ok(streamAsked >= 1);
  assert.equal((await http('PUT', dev('polled'), { inactivityTimeout: 1000 })).status, 201);
  assert.equal((await http('POST', dev('polled') + '/activity')).status, 202);
  await waitFor('polled device in the feed', async () =>
    (await page.locator('#feed a[href="#/device/polled"]').count()) >= 1, LIVE_MS);
  await waitFor('polled device inactive', async () =>
    (await page.locator('#inactive-rows a[href="#/device/polled"]').count()) === 1, 1000 + LIVE_MS);
  // The count follows the daemon's (other devices, e.g. the victim reporting
  // again above, may go inactive meanwhile: compare with what the daemon says).
  await waitFor('inactive count as the daemon counts it', async () => {
    const st = (await http('GET', '/api/v1/stats')).body;
    return Number((await text(page, '#c-inactive')).replace(/,/g, '')) === st.inactive;
  }, 2 * LIVE_MS);
  assert.deepEqual(errors, []);
  await page.close();
});

test('assets: content types, ETag revalidation, HEAD, unknown asset', async () => {
  const index = await fetch(base + '/');
  assert.equal(index.status, 200);
  assert.match(index.headers.get('content-type'), /^text\/html/);
  const etag = index.headers.get('etag');
  assert.match(etag, /^"[0-9a-f]{16}"$/);
  const again = await fetch(base + '/', { headers: { 'If-None-Match': etag } });
  assert.equal(again.status, 304);
  const js = await fetch(base + '/ui/app.js', { method: 'HEAD' });
  assert.equal(js.status, 200);
  assert.match(js.headers.get('content-type'), /^text\/javascript/);
  assert.equal(Number(js.headers.get('content-length')),
               readFileSync(resolve(HERE, '../../web/app.js')).length);
  const missing = await fetch(base + '/ui/missing.js');
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).error, 'not_found');
});

test('with API tokens: the page asks for one, once a session, and works with it', async () => {
  const dataDir = join(workdir, 'auth-data');
  const token = (name, scope) => {
    const p = spawnSync(BIN, ['token', 'create', name, '--scope', scope, '--data-dir', dataDir],
                        { env: cleanEnv(), encoding: 'utf8' });
    assert.equal(p.status, 0, p.stderr);
    return p.stdout.trim().split('\n').pop();
  };
  const viewer = token('viewer', 'read');
  const gateway = token('gateway', 'ingest');
  const ops = token('ops', 'read,ingest,admin');
  const d = await spawnDaemon(dataDir);
  const call = async (method, path, tok, body) => {
    const r = await fetch(d.base + path, {
      method, body: body === undefined ? undefined : JSON.stringify(body),
      headers: { Authorization: 'Bearer ' + tok },
    });
    return r.status;
  };
  const context = await browser.newContext({ viewport: { width: 1360, height: 1000 } });
  try {
    assert.equal(await call('PUT', dev('guarded'), ops, { inactivityTimeout: 2000 }), 201);
    assert.equal(await call('POST', dev('guarded') + '/activity', ops), 202);
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push('page error: ' + e.message));
    page.on('console', (m) => {
      // Refused requests (401, 403) are expected here until the token is given.
      if (m.type() === 'error' && !/\b40[13]\b|events\/stream/.test(m.text() + (m.location().url || '')))
        problems.push('console error: ' + m.text());
    });
    await page.goto(d.base + '/');
    await waitFor('the token prompt', async () => !(await page.locator('#auth').isHidden()), 5000);
    assert.equal(await page.locator('#conn').getAttribute('data-mode'), 'locked');
    assert.match(await text(page, '#auth-msg'), /asks for an API token/);
    assert.equal(await text(page, '#c-devices'), '–');

    // A wrong token, then one without the read scope: asked again, with why.
    await page.fill('#auth-token', 'lst_wrong');
    await page.click('#auth-use');
    await waitFor('refused', async () => /refused/.test(await text(page, '#auth-msg')) &&
      !(await page.locator('#auth').isHidden()), 5000);
    await page.fill('#auth-token', gateway);
    await page.click('#auth-use');
    await waitFor('lacks read', async () => /lacks the read scope/.test(await text(page, '#auth-msg')) &&
      !(await page.locator('#auth').isHidden()), 5000);

    // The right one: counts, and live events over the stream.
    await page.fill('#auth-token', viewer);
    await page.click('#auth-use');
    await waitFor('the counts', async () => (await text(page, '#c-devices')) === '1', 5000);
    assert.equal(await page.locator('#auth').isHidden(), true);
    await waitFor('live mode', async () => (await page.locator('#conn').getAttribute('data-mode')) === 'sse', 5000);
    await waitFor('guarded goes inactive, live', async () =>
      (await page.locator('#feed li', { has: page.locator('a[href="#/device/guarded"]') })
        .filter({ hasText: 'inactive' }).count()) === 1, 2000 + LIVE_MS);
    // The admin change is in the feed as an AUDIT event, by its token's name.
    assert.equal(await call('PUT', dev('guarded'), ops, { inactivityTimeout: 60000 }), 200);
    await waitFor('the audit event', async () =>
      (await page.locator('#feed li').filter({ hasText: 'device.put by ops' }).count()) >= 1, LIVE_MS);

    // Kept for the session: a reload asks nothing.
    await page.reload();
    await waitFor('counts after reload', async () => (await text(page, '#c-devices')) === '1', 5000);
    assert.equal(await page.locator('#auth').isHidden(), true);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('lastseen.token')), viewer);

    // The token revoked while the page runs: it asks for another.
    const p = spawnSync(BIN, ['token', 'revoke', 'viewer', '--data-dir', dataDir], { env: cleanEnv() });
    assert.equal(p.status, 0);
    await waitFor('asked after revocation', async () => !(await page.locator('#auth').isHidden()) &&
      /refused/.test(await text(page, '#auth-msg')), 5000);
    assert.deepEqual(problems, []);
    await page.close();

    // Another session (a new browser context) is asked again.
    const other = await browser.newContext();
    const page2 = await other.newPage();
    await page2.goto(d.base + '/');
    await waitFor('asked again', async () => !(await page2.locator('#auth').isHidden()), 5000);
    await other.close();
  } finally {
    await context.close();
    await stopDaemon(d.proc);
  }
});

mkdirSync(SHOTS, { recursive: true });
