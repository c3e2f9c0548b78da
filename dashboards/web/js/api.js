// api.js — owns talking to the gateway (JSON fetch, error envelope, 401/403) and the small helpers every view shares: el(), toast, dialogs, time and name formats, the live-event bus.

/** An error answered by the gateway (`{"error":{"code","message"}}`) or the network. */
export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

let unauthorized = () => {};

/** Registers what happens when a call answers 401 (the session has ended). */
export function onUnauthorized(fn) {
  unauthorized = fn;
}

/**
 * Calls the gateway. Resolves with the parsed JSON body; rejects with an ApiError whose
 * message is the server's `error.message` (already shown in a toast unless `quiet`).
 * A 401 calls the unauthorized handler (unless `auth: false`, for the session calls).
 */
export async function api(path, { method = 'GET', body, quiet = false, auth = true, signal } = {}) {
  const init = {
    method,
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
    cache: 'no-store',
    signal,
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    const err = new ApiError(0, 'network', 'Cannot reach the gateway. Check the network connection.');
    if (!quiet) toast(err.message, 'error');
    throw err;
  }
  let data = null;
  const text = await res.text().catch(() => '');
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (res.ok) return data;
  const e = (data && data.error) || {};
  const message = e.message || `${res.status} ${res.statusText || 'error'}`;
  const err = new ApiError(res.status, e.code || `http_${res.status}`, message, data);
  if (res.status === 401 && auth) {
    unauthorized(err);
    throw err;
  }
  if (!quiet) toast(message, 'error');
  throw err;
}

/** POSTs a JSON body. */
export function post(path, body = {}, opts = {}) {
  return api(path, { ...opts, method: 'POST', body });
}

/** URL-encodes one path segment. */
export const seg = (s) => encodeURIComponent(String(s));

// ---------------------------------------------------------------------------------------
// Live-event bus: app.js publishes every server-sent event here; views listen.

export const bus = new EventTarget();

/** Calls `fn(type)` on every live event; returns the unsubscribe function. */
export function onLive(fn) {
  const h = (e) => fn(e.detail && e.detail.type);
  bus.addEventListener('live', h);
  return () => bus.removeEventListener('live', h);
}

/** Returns a function that runs `fn` once, `ms` after the last call. */
export function debounce(fn, ms) {
  let t = null;
  const d = (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
  d.cancel = () => clearTimeout(t);
  return d;
}

// ---------------------------------------------------------------------------------------
// DOM: everything from the server goes in as text, never as HTML.

/**
 * Creates an element. `attrs`: `class`, `text`, `on<event>` (listeners), `hidden`,
 * `disabled`, `checked`, `value`, `selected` (properties); anything else becomes an
 * attribute (null/false skip it). Children: nodes, strings (text), arrays, null.
 */
export function el(tag, attrs = {}, ...children) {
  const n = document.createElement(tag);
  setAttrs(n, attrs);
  append(n, children);
  return n;
}

export function setAttrs(n, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') n.className = v;
    else if (k === 'text') n.textContent = String(v);
    else if (k.startsWith('on') && typeof v === 'function') n.addEventListener(k.slice(2), v);
    else if (k === 'hidden' || k === 'disabled' || k === 'checked' || k === 'selected' || k === 'value' || k === 'required' || k === 'open') n[k] = v;
    else n.setAttribute(k, v === true ? '' : String(v));
  }
}

/** Replaces a node's children (nodes, strings, arrays; null skipped). */
export function fill(n, ...children) {
  n.replaceChildren();
  return append(n, children);
}

export function append(n, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    n.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return n;
}

/** Runs an async action from a button: disabled (and marked busy) until it settles. */
export async function busy(button, fn) {
  if (button) {
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
  }
  try {
    return await fn();
  } finally {
    if (button) {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  }
}

// ---------------------------------------------------------------------------------------
// Toasts.

/** Shows a short message; errors stay longer and are announced assertively. */
export function toast(message, kind = 'info') {
  let host = document.getElementById('toasts');
  if (!host) {
    host = el('div', { id: 'toasts', class: 'toasts' });
    document.body.append(host);
  }
  const t = el(
    'div',
    { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status', 'data-testid': 'toast', 'data-kind': kind },
    el('span', { class: 'toast-text', text: message }),
    el('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss', text: '×', onclick: () => t.remove() }),
  );
  host.append(t);
  while (host.children.length > 4) host.firstElementChild.remove();
  setTimeout(() => t.remove(), kind === 'error' ? 9000 : 4000);
}

// ---------------------------------------------------------------------------------------
// Dialogs: in-page <dialog>, built when opened and removed when closed.

/**
 * Opens a modal dialog. `fields` are nodes shown in the body; `onConfirm` is awaited
 * with the confirm button disabled; returning `false` (or throwing) keeps it open.
 */
export function modal({ title, fields = [], confirmLabel = 'Confirm', confirmTestId, danger = false, onConfirm, testid }) {
  const error = el('p', { class: 'dialog-error', role: 'alert', hidden: true });
  const confirm = el('button', {
    type: 'submit',
    class: `btn ${danger ? 'btn-danger' : 'btn-primary'}`,
    'data-testid': confirmTestId,
    text: confirmLabel,
  });
  const cancel = el('button', { type: 'button', class: 'btn', text: 'Cancel', 'data-testid': 'dialog-cancel' });
  const form = el('form', { method: 'dialog', class: 'dialog-form' },
    el('h2', { class: 'dialog-title', text: title }),
    el('div', { class: 'dialog-body' }, fields),
    error,
    el('div', { class: 'dialog-buttons' }, cancel, confirm),
  );
  const dlg = el('dialog', { class: 'dialog', 'data-testid': testid }, form);
  const close = () => {
    if (dlg.open) dlg.close();
    dlg.remove();
  };
  cancel.addEventListener('click', close);
  dlg.addEventListener('cancel', (e) => {
    e.preventDefault();
    close();
  });
  dlg.addEventListener('close', () => dlg.remove());
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.hidden = true;
    if (!form.reportValidity()) return;
    let ok;
    try {
      ok = await busy(confirm, () => onConfirm({ showError }));
    } catch (err) {
      ok = false;
      showError(err && err.message ? err.message : String(err));
    }
    if (ok !== false) close();
  });
  function showError(msg) {
    error.textContent = msg;
    error.hidden = false;
  }
  document.body.append(dlg);
  dlg.showModal();
  const first = form.querySelector('input, select, textarea');
  if (first) first.focus();
  return { close, dialog: dlg };
}

/** A labelled form field. */
export function field(label, control, hint) {
  return el('label', { class: 'field' },
    el('span', { class: 'field-label', text: label }),
    control,
    hint ? el('span', { class: 'field-hint', text: hint }) : null,
  );
}

// ---------------------------------------------------------------------------------------
// Times: always the browser's local time.

const pad = (n) => String(n).padStart(2, '0');

/** `03:01:22` (24 h, local). */
export function fmtClock(ms) {
  if (ms === null || ms === undefined) return '—';
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** `03:01:22` today, `12 Mar 03:01:22` another day, with the year when not this year. */
export function fmtTime(ms) {
  if (ms === null || ms === undefined) return '—';
  const d = new Date(ms);
  const now = new Date();
  if (d.toDateString() === now.toDateString()) return fmtClock(ms);
  const opts = { day: 'numeric', month: 'short' };
  if (d.getFullYear() !== now.getFullYear()) opts.year = 'numeric';
  return `${d.toLocaleDateString(undefined, opts)} ${fmtClock(ms)}`;
}

/** Full local date and time, for tooltips. */
export function fmtFull(ms) {
  if (ms === null || ms === undefined) return '';
  return new Date(ms).toLocaleString();
}

/** `42 s`, `3 min`, `2 h 5 min`, `3 d 4 h`. */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return '—';
  let s = Math.max(0, Math.round(Number(seconds)));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 && m < 10 ? `${m} min ${s % 60} s` : `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}

/** `just now`, `45 s ago`, `3 min ago`, `2 h ago`, `3 d ago`. */
export function fmtAge(ms, now = Date.now()) {
  if (ms === null || ms === undefined) return 'never';
  const s = Math.round((now - ms) / 1000);
  if (s < 10) return 'just now';
  if (s < 60) return `${s} s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h} h ${m % 60 ? `${m % 60} min ` : ''}ago`;
  return `${Math.floor(h / 24)} d ago`;
}

/** A span showing the age of `ms` that the clock ticker keeps current. */
export function ageSpan(ms, attrs = {}) {
  return el('time', {
    class: 'age',
    ...attrs,
    'data-since': ms ?? '',
    datetime: ms ? new Date(ms).toISOString() : null,
    title: fmtFull(ms),
    text: fmtAge(ms),
  });
}

/** A span counting down to `ms` ("in 3 min" / "3 min ago") that the ticker keeps current. */
export function untilSpan(ms, attrs = {}) {
  return el('span', { class: 'until', ...attrs, 'data-until': ms, title: fmtFull(ms), text: fmtUntil(ms) });
}

export function fmtUntil(ms, now = Date.now()) {
  const s = (ms - now) / 1000;
  return s >= 0 ? `in ${fmtDuration(s)}` : `${fmtDuration(-s)} ago`;
}

/** Updates every age and countdown on the page (called every 15 s by app.js). */
export function refreshClocks(root = document) {
  const now = Date.now();
  for (const n of root.querySelectorAll('[data-since]')) {
    const v = n.getAttribute('data-since');
    if (v) n.textContent = fmtAge(Number(v), now);
  }
  for (const n of root.querySelectorAll('[data-until]')) {
    const v = n.getAttribute('data-until');
    if (v) n.textContent = fmtUntil(Number(v), now);
  }
  document.dispatchEvent(new CustomEvent('linli:tick', { detail: { now } }));
}

// ---------------------------------------------------------------------------------------
// Names.

const KIND_NAMES = {
  sos: 'SOS',
  flood: 'Alarm flood (summary)',
  flood_red: 'Flood (red level)',
  heart_rate_high: 'Heart rate high',
  supervision_lost: 'Device not heard from',
  low_battery: 'Low battery',
  bin_fire: 'Bin fire',
  day_burner: 'Lamp on in daylight',
};

/** `fall` → `Fall`, `water_leak` → `Water leak`. */
export function humanKind(kind) {
  if (!kind) return '—';
  if (KIND_NAMES[kind]) return KIND_NAMES[kind];
  const s = String(kind).replace(/[_-]+/g, ' ').trim();
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** `snake_case` → `Snake case`. */
export function humanize(s) {
  if (s === null || s === undefined || s === '') return '—';
  const t = String(s).replace(/[_-]+/g, ' ').trim();
  return t.charAt(0).toUpperCase() + t.slice(1);
}

// Sign-in names → display names, learned from the session and from any `*_display`
// fields the server sends.
const displayNames = new Map();

export function learnName(name, display) {
  if (name && display) displayNames.set(String(name), String(display));
}

/** The display name of a sign-in name, when known; else the name itself. */
export function personName(name) {
  if (name === null || name === undefined || name === '') return '—';
  return displayNames.get(String(name)) || String(name);
}

/** `resident:R-1` → `{kind:'resident', id:'R-1'}`. */
export function parseSource(source) {
  const s = String(source || '');
  const i = s.indexOf(':');
  if (i < 0) return { kind: 'device', id: s };
  return { kind: s.slice(0, i), id: s.slice(i + 1) };
}

/** A number with a fixed count of decimals, or a dash. */
export function num(v, digits = 0) {
  if (v === null || v === undefined || !Number.isFinite(Number(v))) return '—';
  return Number(v).toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
