// app.js — owns the session (sign-in, sign-out, expiry), the header and nav, the hash router, the live connection (SSE + 15 s polling) and the global P1 alert (red banner + repeating sound + mute).

import { api, el, toast, onUnauthorized, bus, debounce, refreshClocks, learnName, humanKind, ageSpan, fmtClock } from './api.js';
import * as inbox from './inbox.js';
import * as residents from './resident.js';
import * as street from './street.js';
import * as ops from './ops.js';

const $ = (id) => document.getElementById(id);

let user = null;
let dispose = null;
let unsubStore = null;
const timers = { poll: null, tick: null, esRetry: null, beep: null };
let es = null;

// ---------------------------------------------------------------------------------------
// Routes.

const ROUTES = {
  inbox: { nav: 'inbox', label: 'Inbox', allowed: () => true, render: inbox.render },
  residents: { nav: 'residents', label: 'Residents', allowed: (u) => u.can.residents, render: residents.renderList },
  resident: { nav: 'residents', allowed: (u) => u.can.residents, render: residents.render },
  street: { nav: 'street', label: 'Street', allowed: (u) => u.can.street, render: street.render },
  ops: { nav: 'ops', label: 'Operations', allowed: (u) => u.can.ops, render: ops.render },
};
const NAV = ['inbox', 'residents', 'street', 'ops'];

function parseHash() {
  const m = /^#\/([a-z-]+)(?:\/(.+))?$/.exec(location.hash || '');
  if (!m) return { name: 'inbox', param: null };
  let param = null;
  if (m[2]) {
    try {
      param = decodeURIComponent(m[2]);
    } catch {
      param = m[2];
    }
  }
  return { name: m[1], param };
}

function route() {
  if (!user) return;
  const { name, param } = parseHash();
  const r = ROUTES[name];
  if (!r) {
    location.replace('#/inbox');
    return;
  }
  closeView();
  const view = $('view');
  view.replaceChildren();
  setActive(r.nav);
  if (!r.allowed(user)) {
    view.append(el('section', { class: 'view', 'data-testid': 'not-allowed' },
      el('h1', { text: 'Not available' }),
      el('p', { text: `Your role (${user.role}) does not include this part of the dashboard.` }),
      el('a', { class: 'btn', href: '#/inbox', text: 'Back to the inbox' })));
    return;
  }
  try {
    dispose = r.render(view, { user, param }) || null;
  } catch (e) {
    console.error(e);
    view.append(el('p', { class: 'error-text', text: `This view failed to open: ${e.message}` }));
  }
  window.scrollTo(0, 0);
}

function setActive(nav) {
  for (const a of $('nav').querySelectorAll('a')) {
    if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function buildNav() {
  $('nav').replaceChildren(...NAV.filter((n) => ROUTES[n].allowed(user)).map((n) =>
    el('a', { href: `#/${n}`, 'data-nav': n, class: 'nav-link' },
      el('span', { text: ROUTES[n].label }),
      n === 'inbox' ? el('span', { id: 'inbox-badge', class: 'nav-badge', hidden: true, 'data-testid': 'inbox-badge' }) : null)));
}

// ---------------------------------------------------------------------------------------
// Session.

function setPhase(p) {
  document.body.dataset.phase = p;
  $('topbar').hidden = p !== 'app';
  $('signin-screen').hidden = p !== 'signin';
  $('boot').hidden = p !== 'boot';
}

function showSignin(info = '') {
  setPhase('signin');
  const i = $('signin-info');
  i.textContent = info;
  i.hidden = !info;
  $('signin-error').textContent = '';
  $('view').replaceChildren();
  const name = $('signin-name');
  setTimeout(() => (name.value ? $('signin-password') : name).focus(), 0);
}

function start(u) {
  if (!u || !u.name) {
    showSignin('The gateway answered without a user. Please sign in.');
    return;
  }
  user = { ...u, can: { residents: false, street: false, ops: false, shelve: false, admin: false, ...(u.can || {}) } };
  learnName(user.name, user.display_name);
  setPhase('app');
  $('whoami').replaceChildren(
    el('span', { class: 'whoami-name', text: user.display_name || user.name }),
    el('span', { class: 'sr-sep', text: ' · ' }),
    el('span', { class: 'whoami-role', text: user.role || '' }));
  $('whoami').title = `Signed in as ${user.name}; zones: ${(user.zones || []).join(', ') || '—'}`;
  buildNav();
  unsubStore = inbox.subscribe(onAlarms);
  inbox.startStore(user);
  connectLive();
  timers.poll = setInterval(() => {
    inbox.refresh();
    publish('poll');
  }, 15000);
  timers.tick = setInterval(() => refreshClocks(), 15000);
  const { name } = parseHash();
  if (!ROUTES[name] || !location.hash || location.hash === '#/' || location.hash === '#') history.replaceState(null, '', '#/inbox');
  route();
}

// Tears down the current view: its timers and listeners, and any open dialog.
function closeView() {
  if (dispose) {
    try {
      dispose();
    } catch (e) {
      console.error(e);
    }
  }
  dispose = null;
  for (const d of document.querySelectorAll('dialog')) d.remove();
}

function stop() {
  user = null;
  closeView();
  if (es) es.close();
  es = null;
  for (const k of Object.keys(timers)) {
    clearInterval(timers[k]);
    clearTimeout(timers[k]);
    timers[k] = null;
  }
  liveRefresh.cancel();
  if (unsubStore) unsubStore();
  unsubStore = null;
  inbox.stopStore();
  alertState.ids = new Set();
  alertState.muted = false;
  updateAlert([]);
  $('view').replaceChildren();
  $('nav').replaceChildren();
  document.title = 'Linli';
}

async function signin(e) {
  e.preventDefault();
  // A click (or Enter) is the gesture browsers need before they let us make sound.
  ensureAudio();
  const name = $('signin-name').value.trim();
  const password = $('signin-password').value;
  const err = $('signin-error');
  err.textContent = '';
  $('signin-info').hidden = true;
  if (!name || !password) {
    err.textContent = 'Enter your name and password.';
    return;
  }
  const btn = $('signin-submit');
  btn.disabled = true;
  try {
    const r = await api('/api/session', { method: 'POST', body: { name, password }, auth: false, quiet: true });
    $('signin-password').value = '';
    start(r && r.user);
  } catch (x) {
    if (x.status === 429) {
      const b = x.body || {};
      const n = b.retry_after_s ?? (b.error && b.error.retry_after_s);
      if (Number.isFinite(Number(n))) {
        err.replaceChildren(
          el('span', { text: `Too many failed sign-ins: wait ${Math.ceil(Number(n))} s` }),
          el('span', { class: 'signin-retry', text: ` (try again after ${fmtClock(Date.now() + Number(n) * 1000)})` }));
      } else {
        err.textContent = x.message || 'Too many failed sign-ins: wait a moment.';
      }
    } else if (x.status === 401) {
      err.textContent = x.message || 'Wrong name or password.';
    } else {
      err.textContent = x.message || 'Sign-in failed.';
    }
    $('signin-password').select();
  } finally {
    btn.disabled = false;
  }
}

async function signout() {
  const btn = $('signout');
  btn.disabled = true;
  try {
    await api('/api/session', { method: 'DELETE', auth: false, quiet: true });
  } catch (e) {
    if (e.status !== 401) toast(`Sign-out: ${e.message}`, 'error');
  } finally {
    btn.disabled = false;
  }
  stop();
  showSignin('You are signed out.');
}

onUnauthorized(() => {
  if (!user) return;
  stop();
  showSignin('Your session has ended. Please sign in again.');
});

// ---------------------------------------------------------------------------------------
// Live updates: server-sent events, re-reading the open alarms (debounced), and a 15 s
// poll in case the stream is down.

const liveRefresh = debounce(() => inbox.refresh(), 300);

function publish(type) {
  bus.dispatchEvent(new CustomEvent('live', { detail: { type } }));
}

function setLive(state) {
  const s = $('live-status');
  if (s.dataset.state === state) return;
  s.dataset.state = state;
  s.textContent = state === 'live' ? 'live' : 'reconnecting';
  s.title = state === 'live' ? 'Live: alarms appear as they happen' : 'Reconnecting to live updates; the list still refreshes every 15 s';
}

function connectLive() {
  clearTimeout(timers.esRetry);
  if (es) es.close();
  es = null;
  if (!user) return;
  if (typeof EventSource !== 'function') {
    setLive('reconnecting');
    return;
  }
  setLive('reconnecting');
  const src = new EventSource('/api/events', { withCredentials: false });
  es = src;
  src.onopen = () => {
    if (es !== src) return;
    setLive('live');
    liveRefresh(); // catch up on anything missed while disconnected
    publish('reconnected');
  };
  src.onerror = () => {
    if (es !== src) return;
    setLive('reconnecting');
    if (src.readyState === EventSource.CLOSED) {
      src.close();
      es = null;
      timers.esRetry = setTimeout(connectLive, 5000);
    }
  };
  const on = (type) => src.addEventListener(type, () => {
    if (es !== src) return;
    setLive('live');
    liveRefresh();
    publish(type);
  });
  ['alarm', 'work_order', 'lagged', 'message'].forEach(on);
}

// ---------------------------------------------------------------------------------------
// Priority-1 alert: banner, sound, mute, title and the inbox badge.

const alertState = { ids: new Set(), muted: false, mutedIds: new Set() };
let audio = null;

function ensureAudio() {
  try {
    if (!audio) {
      const C = window.AudioContext || window.webkitAudioContext;
      if (!C) return;
      audio = new C();
    }
    if (audio.state === 'suspended') audio.resume().then(syncSound, () => {});
  } catch {
    /* no sound available */
  }
}

function tone(freq, at, len) {
  const o = audio.createOscillator();
  const g = audio.createGain();
  o.type = 'square';
  o.frequency.setValueAtTime(freq, at);
  g.gain.setValueAtTime(0.0001, at);
  g.gain.exponentialRampToValueAtTime(0.3, at + 0.02);
  g.gain.setValueAtTime(0.3, at + len - 0.04);
  g.gain.exponentialRampToValueAtTime(0.0001, at + len);
  o.connect(g);
  g.connect(audio.destination);
  o.start(at);
  o.stop(at + len + 0.02);
}

/** One two-tone beep (high, low). */
function beep() {
  if (!audio || audio.state !== 'running') return;
  const t = audio.currentTime + 0.02;
  tone(988, t, 0.22);
  tone(740, t + 0.3, 0.22);
}

function soundWanted() {
  return !!user && alertState.ids.size > 0 && !alertState.muted;
}

function syncSound() {
  const want = soundWanted();
  if (want && !timers.beep) {
    beep();
    timers.beep = setInterval(() => (soundWanted() ? beep() : syncSound()), 2000);
  } else if (!want && timers.beep) {
    clearInterval(timers.beep);
    timers.beep = null;
  }
  const running = !!audio && audio.state === 'running';
  document.documentElement.dataset.sound = !alertState.ids.size ? 'off' : alertState.muted ? 'muted' : running ? 'playing' : 'blocked';
  const enable = document.getElementById('enable-sound');
  if (enable) enable.hidden = running || alertState.muted;
}

function drawMute() {
  const b = $('mute');
  b.setAttribute('aria-pressed', String(alertState.muted));
  b.textContent = alertState.muted ? 'Muted' : 'Sound on';
  b.classList.toggle('muted', alertState.muted);
  b.title = alertState.muted
    ? 'Sound is off for the alarms showing now; a new priority-1 alarm turns it back on. Click to turn sound on.'
    : 'Silence the priority-1 alarm sound';
}

function toggleMute() {
  ensureAudio();
  alertState.muted = !alertState.muted;
  alertState.mutedIds = new Set(alertState.muted ? alertState.ids : []);
  drawMute();
  syncSound();
}

function onAlarms(s) {
  updateAlert(s.open || []);
}

function updateAlert(open) {
  const loud = inbox.sortAlarms(open.filter(inbox.isLoudP1));
  const ids = new Set(loud.map((a) => a.id));
  // Mute covers the alarms showing when it was pressed: a new P1 sounds again.
  if (alertState.muted && [...ids].some((id) => !alertState.mutedIds.has(id))) {
    alertState.muted = false;
    alertState.mutedIds = new Set();
  }
  alertState.ids = ids;
  drawMute();
  drawBanner(loud);
  syncSound();
  const unacked = open.filter(inbox.isUnacked).length;
  const badge = document.getElementById('inbox-badge');
  if (badge) {
    badge.textContent = String(unacked);
    badge.hidden = unacked === 0;
    badge.classList.toggle('nav-badge-p1', loud.length > 0);
  }
  document.title = loud.length ? `(${loud.length}) PRIORITY 1 — Linli` : unacked ? `(${unacked}) Linli` : 'Linli';
}

function drawBanner(loud) {
  const b = $('p1-banner');
  if (!loud.length) {
    b.hidden = true;
    b.replaceChildren();
    document.body.classList.remove('has-p1');
    return;
  }
  const a = loud[0];
  const about = inbox.aboutText(a);
  b.replaceChildren(
    el('span', { class: 'p1-icon', 'aria-hidden': 'true', text: '⚠' }),
    el('div', { class: 'p1-text' },
      el('strong', { class: 'p1-title', text: `Priority 1: ${humanKind(a.kind)} — ${about}` }),
      el('span', { class: 'p1-sub' },
        [a.zone, a.device].filter(Boolean).join(' · '), ' · raised ', ageSpan(a.raised_ms),
        loud.length > 1 ? ` · and ${loud.length - 1} more not acknowledged` : '')),
    el('button', { type: 'button', id: 'enable-sound', class: 'btn btn-on-red', 'data-testid': 'enable-sound', hidden: true, text: 'Tap to turn on sound', onclick: () => { ensureAudio(); syncSound(); } }),
    el('a', { class: 'btn btn-on-red', href: `#/inbox/${a.id}`, 'data-testid': 'p1-open', text: 'Open' }));
  b.dataset.alarmCount = String(loud.length);
  b.hidden = false;
  document.body.classList.add('has-p1');
  document.documentElement.style.setProperty('--banner-h', `${b.offsetHeight}px`);
}

// ---------------------------------------------------------------------------------------
// Boot.

async function boot() {
  $('signin').addEventListener('submit', signin);
  $('signout').addEventListener('click', signout);
  $('mute').addEventListener('click', toggleMute);
  window.addEventListener('hashchange', route);
  // Any touch or key press unlocks the sound (a reload keeps the session but not the
  // permission to play audio).
  const unlock = () => {
    ensureAudio();
    syncSound();
  };
  document.addEventListener('pointerdown', unlock, true);
  document.addEventListener('keydown', unlock, true);
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && user) {
      inbox.refresh();
      publish('visible');
      if (!es) connectLive();
    }
  });
  setPhase('boot');
  try {
    const r = await api('/api/session', { auth: false, quiet: true });
    start(r && r.user);
  } catch (e) {
    showSignin(e.status === 401 ? '' : e.message);
  }
}

boot();
