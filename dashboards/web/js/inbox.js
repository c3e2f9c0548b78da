// inbox.js — owns alarms in the browser: the open-alarm store, the inbox list, the alarm detail panel with its history, and the alarm actions (ack, resolve, assign, comment, shelve) with their dialogs.

import {
  api, post, seg, el, fill, toast, modal, field, busy, debounce,
  ageSpan, untilSpan, fmtClock, fmtTime, fmtFull, fmtDuration,
  humanKind, humanize, personName, learnName, parseSource,
} from './api.js';

// ---------------------------------------------------------------------------------------
// Store: the open alarms the user may see, shared by the inbox, the P1 banner and the nav.

export const store = { open: [], loaded: false, error: null, user: null, fetchedAt: 0 };
const subs = new Set();
let epoch = 0;
let inflight = null;
let again = false;

/** Calls `fn(store)` after every refresh; returns the unsubscribe function. */
export function subscribe(fn) {
  subs.add(fn);
  return () => subs.delete(fn);
}

function notify() {
  for (const f of [...subs]) {
    try {
      f(store);
    } catch (e) {
      console.error(e);
    }
  }
}

/** Re-reads `GET /api/alarms?open=true` (coalescing overlapping calls). */
export function refresh() {
  if (!store.user) return Promise.resolve();
  if (inflight) {
    again = true;
    return inflight;
  }
  const my = epoch;
  inflight = (async () => {
    do {
      again = false;
      try {
        const r = await api('/api/alarms?open=true', { quiet: true });
        if (my !== epoch) return;
        store.open = (r && Array.isArray(r.alarms) ? r.alarms : []).filter(isOpen);
        store.open.forEach(learnNames);
        store.loaded = true;
        store.fetchedAt = Date.now();
        if (store.error) toast('Alarm list is up to date again.', 'ok');
        store.error = null;
      } catch (e) {
        if (my !== epoch || e.status === 401) return;
        if (store.error !== e.message) toast(`Could not load alarms: ${e.message}`, 'error');
        store.error = e.message;
      }
      notify();
    } while (again && my === epoch);
  })().finally(() => {
    inflight = null;
  });
  return inflight;
}

export function startStore(user) {
  epoch += 1;
  store.user = user;
  store.open = [];
  store.loaded = false;
  store.error = null;
  return refresh();
}

export function stopStore() {
  epoch += 1;
  store.user = null;
  store.open = [];
  store.loaded = false;
  inflight = null;
  notify();
}

// ---------------------------------------------------------------------------------------
// Alarm facts.

export const isOpen = (a) => a.state !== 'normal' && (a.closed_ms === null || a.closed_ms === undefined);
export const isUnacked = (a) => isOpen(a) && (a.state === 'active_unacked' || a.state === 'returned_unacked');
export const isShelved = (a) => isOpen(a) && a.shelved_until !== null && a.shelved_until !== undefined;

/** Is this an open, unacknowledged priority-1 alarm (banner and sound)? */
export const isLoudP1 = (a) => Number(a.priority) === 1 && isUnacked(a) && !isShelved(a);

const STATE_TEXT = {
  active_unacked: 'Active · not acknowledged',
  active_acked: 'Acknowledged',
  returned_unacked: 'Cleared · not acknowledged',
  normal: 'Closed',
};

export const stateText = (s) => STATE_TEXT[s] || humanize(s);

const PRIORITY_TEXT = { 1: 'Life-safety', 2: 'Urgent', 3: 'Attention', 4: 'Maintenance' };

/** Unacknowledged before acknowledged (closed last), then priority 1 first, then newest. */
export function sortAlarms(list) {
  const rank = (a) => (!isOpen(a) ? 2 : isUnacked(a) ? 0 : 1);
  return [...list].sort((a, b) =>
    rank(a) - rank(b)
    || (rank(a) === 2 ? 0 : Number(a.priority) - Number(b.priority))
    || (b.raised_ms || 0) - (a.raised_ms || 0)
    || (b.id || 0) - (a.id || 0));
}

function learnNames(a) {
  learnName(a.acked_by, a.acked_by_display);
  learnName(a.assignee, a.assignee_display);
}

/** What the alarm is about: `Resident R-1`, `Asset L-12`, or the device. */
export function aboutText(a) {
  const src = parseSource(a.source);
  if (src.kind === 'resident') return `Resident ${src.id}`;
  if (src.kind === 'asset') return `Asset ${src.id}`;
  if (a.subject) return a.subject;
  if (src.kind === 'zone') return `Zone ${src.id}`;
  if (src.kind === 'group') return `Group ${src.id}`;
  return a.device || src.id || a.source || '—';
}

/** The resident this alarm is about, when the user may open residents. */
export function residentOf(a, user) {
  if (!user || !user.can || !user.can.residents) return null;
  const src = parseSource(a.source);
  if (src.kind === 'resident') return src.id;
  if (a.subject && src.kind !== 'asset') return a.subject;
  return null;
}

function assetOf(a, user) {
  if (!user || !user.can || !user.can.street) return null;
  const src = parseSource(a.source);
  return src.kind === 'asset' ? src.id : null;
}

export function priorityBadge(p, big = false) {
  const n = Number(p) || 4;
  return el('span', { class: `prio prio-${n}${big ? ' prio-big' : ''}`, title: `Priority ${n}: ${PRIORITY_TEXT[n] || ''}`, 'aria-label': `Priority ${n}` }, `P${n}`);
}

// ---------------------------------------------------------------------------------------
// Actions.

const running = new Set(); // `${id}:${action}` while a request runs

const DISPOSITIONS = [
  'Attended – resident unhurt',
  'Attended – injured, ambulance called',
  'Attended – minor injury, treated on site',
  'False alarm – device dropped or knocked',
  'False alarm – pressed by mistake',
  'Fixed – fault repaired on site',
  'Cleared – condition gone, no action needed',
  'Test',
  'Other (see note)',
];

/** Which action buttons an alarm gets for this user. */
export function actionsFor(a, user) {
  if (!isOpen(a)) return [];
  const can = (user && user.can) || {};
  const out = [];
  if (isUnacked(a)) out.push('ack');
  out.push('resolve', 'assign', 'comment');
  if (can.shelve && !a.life_safety) out.push(isShelved(a) ? 'unshelve' : 'shelve');
  return out;
}

const ACTION_LABEL = {
  ack: 'Acknowledge',
  resolve: 'Resolve…',
  assign: 'Assign…',
  comment: 'Comment…',
  shelve: 'Shelve…',
  unshelve: 'Unshelve',
};

function actionButtons(a, user, onDone, attr) {
  return actionsFor(a, user).map((action) => {
    const b = el('button', {
      type: 'button',
      class: `btn btn-action act-${action}${action === 'ack' ? ' btn-primary' : ''}`,
      [attr]: action,
      disabled: running.has(`${a.id}:${action}`),
      text: ACTION_LABEL[action],
    });
    b.addEventListener('click', (e) => {
      e.stopPropagation();
      runAction(a, action, b, onDone);
    });
    return b;
  });
}

async function send(a, action, body, button) {
  const key = `${a.id}:${action}`;
  running.add(key);
  try {
    return await busy(button, () => post(`/api/alarms/${seg(a.id)}/${action}`, body));
  } finally {
    running.delete(key);
  }
}

/** Runs one action on an alarm (dialog first where one is needed), then `onDone()`. */
export function runAction(a, action, button, onDone) {
  const what = `${humanKind(a.kind)} — ${aboutText(a)}`;
  const finish = () => {
    refresh();
    if (onDone) onDone();
  };
  const simple = async (body, okText) => {
    try {
      await send(a, action, body, button);
      toast(okText, 'ok');
    } catch {
      /* the toast shows the server's message */
    }
    finish();
  };
  switch (action) {
    case 'ack':
      return simple({}, `Acknowledged: ${what}`);
    case 'unshelve':
      return simple({}, `Unshelved: ${what}`);
    case 'resolve': {
      const select = el('select', { 'data-testid': 'disposition', name: 'disposition', 'aria-required': a.life_safety ? 'true' : null },
        el('option', { value: '', text: a.life_safety ? 'Choose what happened…' : '(no disposition)' }),
        DISPOSITIONS.map((d) => el('option', { value: d, text: d })));
      const note = el('textarea', { 'data-testid': 'resolve-note', name: 'note', rows: 3, maxlength: 1000, placeholder: 'What was done, by whom' });
      return modal({
        title: `Resolve ${what}`,
        testid: 'resolve-dialog',
        confirmLabel: 'Resolve alarm',
        confirmTestId: 'resolve-confirm',
        fields: [
          a.life_safety ? el('p', { class: 'dialog-note', text: 'Life-safety alarm: say what happened before closing it.' }) : null,
          field('Disposition', select),
          field('Note (optional)', note),
        ],
        onConfirm: async ({ showError }) => {
          const disposition = select.value;
          if (a.life_safety && !disposition) {
            showError('Choose a disposition: life-safety alarms need one.');
            return false;
          }
          const body = { disposition };
          if (note.value.trim()) body.note = note.value.trim();
          try {
            await send(a, 'resolve', body, null);
          } catch (e) {
            showError(e.message);
            finish();
            return false;
          }
          toast(`Resolved: ${what}`, 'ok');
          finish();
          return true;
        },
      });
    }
    case 'assign': {
      const to = el('input', { type: 'text', 'data-testid': 'assign-to', name: 'to', required: true, maxlength: 128, autocomplete: 'off', placeholder: 'Sign-in name, e.g. zhang', value: a.assignee || '' });
      return modal({
        title: `Assign ${what}`,
        testid: 'assign-dialog',
        confirmLabel: 'Assign',
        confirmTestId: 'assign-confirm',
        fields: [field('Assign to', to, 'The person who takes care of it.')],
        onConfirm: async ({ showError }) => {
          const who = to.value.trim();
          if (!who) {
            showError('Say who to assign it to.');
            return false;
          }
          try {
            await send(a, 'assign', { to: who }, null);
          } catch (e) {
            showError(e.message);
            return false;
          }
          toast(`Assigned to ${who}: ${what}`, 'ok');
          finish();
          return true;
        },
      });
    }
    case 'comment': {
      const text = el('textarea', { 'data-testid': 'comment-text', name: 'text', rows: 4, required: true, maxlength: 2000, placeholder: 'Add to the alarm history' });
      return modal({
        title: `Comment on ${what}`,
        testid: 'comment-dialog',
        confirmLabel: 'Add comment',
        confirmTestId: 'comment-confirm',
        fields: [field('Comment', text)],
        onConfirm: async ({ showError }) => {
          if (!text.value.trim()) {
            showError('Write a comment first.');
            return false;
          }
          try {
            await send(a, 'comment', { text: text.value.trim() }, null);
          } catch (e) {
            showError(e.message);
            return false;
          }
          toast('Comment added', 'ok');
          finish();
          return true;
        },
      });
    }
    case 'shelve': {
      const minutes = el('input', { type: 'number', 'data-testid': 'shelve-minutes', name: 'minutes', min: 1, max: 1440, step: 1, required: true, value: '30', inputmode: 'numeric' });
      const reason = el('input', { type: 'text', 'data-testid': 'shelve-reason', name: 'reason', required: true, maxlength: 500, placeholder: 'Why, e.g. sensor being replaced' });
      return modal({
        title: `Shelve ${what}`,
        testid: 'shelve-dialog',
        confirmLabel: 'Shelve',
        confirmTestId: 'shelve-confirm',
        fields: [
          el('p', { class: 'dialog-note', text: 'A shelved alarm stays open but nobody is paged until the time is up. The gateway may cap the time.' }),
          field('Minutes', minutes),
          field('Reason', reason),
        ],
        onConfirm: async ({ showError }) => {
          const m = Math.round(Number(minutes.value));
          if (!(m >= 1)) {
            showError('Give a number of minutes (1 or more).');
            return false;
          }
          if (!reason.value.trim()) {
            showError('Say why the alarm is shelved.');
            return false;
          }
          let r;
          try {
            r = await send(a, 'shelve', { seconds: m * 60, reason: reason.value.trim() }, null);
          } catch (e) {
            showError(e.message);
            return false;
          }
          const granted = r && Number.isFinite(r.granted_s) ? r.granted_s : m * 60;
          toast(`Shelved for ${fmtDuration(granted)}${granted < m * 60 ? ' (capped by the gateway)' : ''}: ${what}`, 'ok');
          finish();
          return true;
        },
      });
    }
    default:
      return undefined;
  }
}

// ---------------------------------------------------------------------------------------
// Rows.

function facts(a) {
  const out = [];
  out.push(el('span', { class: `state state-${a.state}`, 'data-testid': 'alarm-state', text: stateText(a.state) }));
  if (isOpen(a) && a.condition === false && a.state !== 'returned_unacked') out.push(el('span', { class: 'tag', text: 'condition gone' }));
  if (isShelved(a)) out.push(el('span', { class: 'tag tag-shelved' }, 'Shelved until ', fmtClock(a.shelved_until)));
  if (a.out_of_service) out.push(el('span', { class: 'tag', text: 'Out of service' }));
  if (a.chattering) out.push(el('span', { class: 'tag', text: 'Chattering' }));
  if (a.suppressed_by) out.push(el('span', { class: 'tag', text: `Explained by #${a.suppressed_by}` }));
  if (a.flooded_into) out.push(el('span', { class: 'tag', text: `In flood summary #${a.flooded_into}` }));
  if (a.children) out.push(el('span', { class: 'tag', text: `${a.children} related` }));
  if (a.acked_by) {
    out.push(el('span', { class: 'who', 'data-testid': 'acked-by' },
      'Acknowledged by ', el('strong', { text: personName(a.acked_by) }),
      a.time_to_ack_s !== null && a.time_to_ack_s !== undefined ? el('span', { class: 'tta', 'data-testid': 'time-to-ack', text: ` after ${fmtDuration(a.time_to_ack_s)}` }) : null));
  }
  if (a.assignee) out.push(el('span', { class: 'who', 'data-testid': 'assignee' }, 'Assigned to ', el('strong', { text: personName(a.assignee) })));
  const esc = escalationInfo(a);
  if (esc) out.push(esc);
  if (!isOpen(a) && a.disposition) out.push(el('span', { class: 'who', text: `Resolved: ${a.disposition}` }));
  return out;
}

function escalationInfo(a) {
  const parts = [];
  if (a.escalations > 0) parts.push(el('strong', { text: `Escalated ${a.escalations}×` }));
  if (isUnacked(a) && a.escalate_at) {
    parts.push(parts.length ? ' · next ' : 'Escalates ', untilSpan(a.escalate_at));
  }
  if (!parts.length) return null;
  return el('span', { class: `escalation${a.escalations > 0 ? ' escalated' : ''}`, 'data-testid': 'escalation' }, parts);
}

function alarmRow(a, user, { onOpen, onDone, selected }) {
  const kind = el('span', { class: 'alarm-kind', text: humanKind(a.kind) });
  const row = el('li', {
    class: `alarm-row prio-row-${Number(a.priority) || 4}${isUnacked(a) ? ' unacked' : ''}${isOpen(a) ? '' : ' closed'}${isLoudP1(a) ? ' p1-loud' : ''}${selected ? ' selected' : ''}`,
    'data-alarm-id': a.id,
    'data-priority': a.priority,
    'data-state': a.state,
    'data-kind': a.kind,
    tabindex: 0,
    'aria-label': `Priority ${a.priority} ${humanKind(a.kind)}, ${aboutText(a)}, ${stateText(a.state)}`,
  },
  el('div', { class: 'alarm-main' },
    priorityBadge(a.priority, true),
    el('div', { class: 'alarm-what' },
      el('div', { class: 'alarm-title' },
        kind,
        a.count > 1 ? el('span', { class: 'count', 'data-testid': 'alarm-count', title: 'Times raised', text: `×${a.count}` }) : null,
        a.life_safety ? el('span', { class: 'tag tag-ls', text: 'life-safety' }) : null),
      el('div', { class: 'alarm-where' },
        el('span', { class: 'about', text: aboutText(a) }),
        el('span', { class: 'zone', text: a.zone || '' }),
        a.device ? el('span', { class: 'device', text: a.device }) : null),
      a.detail ? el('div', { class: 'alarm-detail-text', text: a.detail }) : null),
    el('div', { class: 'alarm-when' },
      ageSpan(a.raised_ms, { 'data-testid': 'alarm-age' }),
      el('span', { class: 'clock', text: fmtTime(a.raised_ms) }))),
  el('div', { class: 'alarm-facts' }, facts(a)),
  el('div', { class: 'alarm-actions' }, actionButtons(a, user, onDone, 'data-action')));
  row.addEventListener('click', (e) => {
    if (e.target.closest('button, a, input, select, textarea, label')) return;
    onOpen(a.id);
  });
  row.addEventListener('keydown', (e) => {
    if ((e.key === 'Enter' || e.key === ' ') && e.target === row) {
      e.preventDefault();
      onOpen(a.id);
    }
  });
  return row;
}

// ---------------------------------------------------------------------------------------
// Detail panel.

const ACTION_WORDS = {
  raised: 'raised',
  repeat: 'repeated',
  cleared: 'condition cleared',
  acked: 'acknowledged',
  resolved: 'resolved',
  shelved: 'shelved',
  unshelved: 'unshelved',
  suppressed: 'suppressed (root cause elsewhere)',
  unsuppressed: 'no longer suppressed',
  escalated: 'escalated',
  chattering: 'flagged as chattering',
  chatter_ended: 'chatter ended',
  flooded: 'grouped into a flood summary',
  out_of_service: 'taken out of service',
  in_service: 'back in service',
  assigned: 'assigned',
  comment: 'commented',
};

function historyItem(t) {
  learnName(t.who, t.who_display);
  const action = ACTION_WORDS[t.action] || humanize(t.action).toLowerCase();
  const who = personName(t.who_display || t.who);
  return el('li', { class: `hist hist-${t.action}`, 'data-action-name': t.action },
    el('time', { class: 'hist-time', datetime: new Date(t.at_ms).toISOString(), title: fmtFull(t.at_ms), text: fmtTime(t.at_ms) }),
    ' ',
    el('span', { class: 'hist-text', text: `${action} by ${who}` }),
    t.note ? [' ', el('span', { class: 'hist-note', text: t.note })] : null);
}

function detailPanel(a, history, user, { onClose, onDone, onOpen }) {
  const resident = residentOf(a, user);
  const asset = assetOf(a, user);
  const rows = [
    ['Alarm', `#${a.id}`],
    ['About', aboutText(a)],
    ['Source', a.source],
    ['Device', a.device],
    ['Site / zone', [a.site, a.zone].filter(Boolean).join(' / ')],
    ['Raised', el('span', {}, fmtTime(a.raised_ms), ' (', ageSpan(a.raised_ms), ')')],
    ['Last change', fmtTime(a.updated_ms)],
    ['Value', a.value !== null && a.value !== undefined ? String(a.value) : null],
    ['Times raised', a.count > 1 ? String(a.count) : null],
    ['Acknowledged', a.acked_by ? `${personName(a.acked_by)}${a.acked_ms ? ` at ${fmtTime(a.acked_ms)}` : ''}${a.time_to_ack_s !== null && a.time_to_ack_s !== undefined ? ` — after ${fmtDuration(a.time_to_ack_s)}` : ''}` : null],
    ['Assigned to', a.assignee ? personName(a.assignee) : null],
    ['Escalations', a.escalations ? String(a.escalations) : null],
    ['Next escalation', isUnacked(a) && a.escalate_at ? untilSpan(a.escalate_at) : null],
    ['Shelved until', isShelved(a) ? fmtTime(a.shelved_until) : null],
    ['Closed', a.closed_ms ? fmtTime(a.closed_ms) : null],
    ['Disposition', a.disposition],
    ['Notified', a.announced === false ? 'No (shelved, suppressed or out of service)' : null],
  ].filter(([, v]) => v !== null && v !== undefined && v !== '');
  const related = [];
  if (a.suppressed_by) related.push(el('button', { type: 'button', class: 'btn btn-link', onclick: () => onOpen(a.suppressed_by), text: `Open root cause #${a.suppressed_by}` }));
  if (a.flooded_into) related.push(el('button', { type: 'button', class: 'btn btn-link', onclick: () => onOpen(a.flooded_into), text: `Open flood summary #${a.flooded_into}` }));

  return el('aside', { class: `detail prio-row-${Number(a.priority) || 4}`, 'data-testid': 'alarm-detail', 'data-detail-alarm-id': a.id, 'aria-label': 'Alarm detail' },
    el('header', { class: 'detail-head' },
      priorityBadge(a.priority, true),
      el('div', {},
        el('h2', { class: 'detail-title', text: humanKind(a.kind) }),
        el('p', { class: 'detail-sub' }, el('span', { class: `state state-${a.state}`, text: stateText(a.state) }), a.life_safety ? el('span', { class: 'tag tag-ls', text: 'life-safety' }) : null)),
      el('button', { type: 'button', class: 'btn detail-close', 'data-testid': 'detail-close', 'aria-label': 'Close detail', text: 'Close', onclick: onClose })),
    a.detail ? el('p', { class: 'detail-text', text: a.detail }) : null,
    el('div', { class: 'detail-links' },
      resident ? el('a', { class: 'btn btn-link', href: `#/resident/${encodeURIComponent(resident)}`, 'data-testid': 'resident-link', text: `Open resident ${resident}` }) : null,
      asset ? el('a', { class: 'btn btn-link', href: `#/street/${encodeURIComponent(asset)}`, 'data-testid': 'asset-link', text: `Show asset ${asset} on the map` }) : null,
      related),
    el('div', { class: 'detail-actions' }, actionButtons(a, user, onDone, 'data-detail-action')),
    el('dl', { class: 'facts' }, rows.map(([k, v]) => [el('dt', { text: k }), el('dd', {}, v)])),
    el('h3', { class: 'detail-h3', text: 'History' }),
    history.length
      ? el('ol', { class: 'history', 'data-testid': 'alarm-history' }, history.map(historyItem))
      : el('ol', { class: 'history', 'data-testid': 'alarm-history' }, el('li', { class: 'hist muted', text: 'No recorded steps.' })));
}

// ---------------------------------------------------------------------------------------
// The inbox view (`#/inbox`, `#/inbox/ID` opens an alarm's detail).

export function render(root, { user, param }) {
  let alive = true;
  let showClosed = false;
  let all = null; // every alarm (open and closed) while "show closed" is on
  let detailId = param && Number.isFinite(Number(param)) ? Number(param) : null;
  let detail = null; // {alarm, history}
  let lastSig = '';

  const list = el('ol', { class: 'alarm-list', 'aria-label': 'Alarms', 'aria-live': 'polite' });
  const empty = el('div', { class: 'empty', hidden: true });
  const counts = el('div', { class: 'counts', 'aria-label': 'Open alarms by priority' });
  const toggle = el('input', { type: 'checkbox', 'data-testid': 'show-closed', id: 'show-closed' });
  const detailHost = el('div', { class: 'detail-host' });
  const layout = el('div', { class: 'inbox-layout' }, el('div', { class: 'inbox-list' }, list, empty), detailHost);
  const view = el('section', { class: 'view inbox', 'data-testid': 'inbox' },
    el('div', { class: 'view-head' },
      el('h1', { text: 'Alarm inbox' }),
      counts,
      el('label', { class: 'toggle', for: 'show-closed' }, toggle, el('span', { text: 'Show closed' }))),
    layout);
  root.append(view);

  toggle.addEventListener('change', () => {
    showClosed = toggle.checked;
    all = null;
    lastSig = '';
    if (showClosed) loadAll();
    else draw();
  });

  async function loadAll() {
    try {
      const r = await api('/api/alarms?limit=200', { quiet: true });
      if (!alive || !showClosed) return;
      all = r && Array.isArray(r.alarms) ? r.alarms : [];
      all.forEach(learnNames);
    } catch (e) {
      if (!alive || e.status === 401) return;
      toast(`Could not load closed alarms: ${e.message}`, 'error');
    }
    draw();
  }
  const reloadAll = debounce(loadAll, 250);

  function items() {
    if (!showClosed || !all) return store.open;
    // Open alarms from the store are the freshest; closed ones from the full list.
    const openIds = new Set(store.open.map((a) => a.id));
    return [...store.open, ...all.filter((a) => !isOpen(a) && !openIds.has(a.id))];
  }

  function draw() {
    if (!alive) return;
    const alarms = sortAlarms(items());
    const sig = JSON.stringify([alarms, detailId, [...running]]);
    drawCounts();
    if (sig === lastSig) return;
    lastSig = sig;
    const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest('[data-alarm-id]');
    const focusId = focused ? focused.getAttribute('data-alarm-id') : null;
    list.replaceChildren(...alarms.map((a) => alarmRow(a, user, { onOpen: openDetail, onDone: afterAction, selected: a.id === detailId })));
    if (focusId) {
      const again = list.querySelector(`[data-alarm-id="${CSS.escape(focusId)}"]`);
      if (again) again.focus({ preventScroll: true });
    }
    if (!store.loaded && !alarms.length) {
      empty.replaceChildren(el('p', { text: store.error ? `Could not load alarms: ${store.error}` : 'Loading alarms…' }));
      empty.hidden = false;
    } else if (!alarms.length) {
      empty.replaceChildren(el('p', { class: 'calm', text: '✓ No open alarms' }), el('p', { class: 'muted', text: 'New alarms appear here at once, with sound for priority 1.' }));
      empty.hidden = false;
    } else {
      empty.hidden = true;
    }
  }

  function drawCounts() {
    const open = store.open;
    const unacked = open.filter(isUnacked).length;
    const by = [1, 2, 3, 4].map((p) => open.filter((a) => Number(a.priority) === p).length);
    fill(counts,
      el('span', { class: 'count-total', text: `${open.length} open · ${unacked} not acknowledged` }),
      by.map((n, i) => (n ? el('span', { class: `prio prio-${i + 1}`, title: `Priority ${i + 1}` }, `P${i + 1}: ${n}`) : null)));
  }

  async function openDetail(id) {
    detailId = Number(id);
    lastSig = '';
    if (location.hash !== `#/inbox/${detailId}`) history.replaceState(null, '', `#/inbox/${detailId}`);
    draw();
    await loadDetail();
    const panel = detailHost.querySelector('[data-testid="alarm-detail"]');
    if (panel && window.matchMedia('(max-width: 1099px)').matches) panel.scrollIntoView({ block: 'start', behavior: 'smooth' });
  }

  function closeDetail() {
    detailId = null;
    detail = null;
    detailHost.replaceChildren();
    layout.classList.remove('has-detail');
    lastSig = '';
    draw();
    if (location.hash.startsWith('#/inbox/')) history.replaceState(null, '', '#/inbox');
  }

  let detailSeq = 0;
  async function loadDetail() {
    if (detailId === null) return;
    const id = detailId;
    const my = ++detailSeq;
    if (!detail || detail.alarm.id !== id) {
      detailHost.replaceChildren(el('aside', { class: 'detail', 'data-testid': 'alarm-detail', 'aria-busy': 'true' }, el('p', { text: `Loading alarm #${id}…` })));
      layout.classList.add('has-detail');
    }
    let r;
    try {
      r = await api(`/api/alarms/${seg(id)}`, { quiet: true });
    } catch (e) {
      if (!alive || my !== detailSeq || e.status === 401) return;
      detailHost.replaceChildren(el('aside', { class: 'detail', 'data-testid': 'alarm-detail' },
        el('p', { class: 'error-text', text: `Alarm #${id}: ${e.message}` }),
        el('button', { type: 'button', class: 'btn', text: 'Close', onclick: closeDetail })));
      return;
    }
    if (!alive || my !== detailSeq || detailId !== id) return;
    const history = Array.isArray(r.history) ? r.history : [];
    const { history: _h, ...alarm } = r;
    learnNames(alarm);
    const sig = JSON.stringify([alarm, history, [...running]]);
    if (detail && detail.sig === sig && detailHost.firstElementChild) return;
    detail = { alarm, history, sig };
    detailHost.replaceChildren(detailPanel(alarm, history, user, { onClose: closeDetail, onDone: afterAction, onOpen: openDetail }));
    layout.classList.add('has-detail');
  }
  const reloadDetail = debounce(loadDetail, 150);

  function afterAction() {
    if (!alive) return;
    lastSig = '';
    draw();
    if (showClosed) reloadAll();
    if (detailId !== null) loadDetail();
  }

  const unsub = subscribe(() => {
    draw();
    if (showClosed) reloadAll();
    if (detailId !== null) reloadDetail();
  });
  const onKey = (e) => {
    if (e.key === 'Escape' && detailId !== null && !document.querySelector('dialog[open]')) closeDetail();
  };
  document.addEventListener('keydown', onKey);

  draw();
  if (detailId !== null) loadDetail();
  if (!store.loaded) refresh();

  return () => {
    alive = false;
    unsub();
    reloadAll.cancel();
    reloadDetail.cancel();
    document.removeEventListener('keydown', onKey);
  };
}
