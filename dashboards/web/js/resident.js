// resident.js — owns the residents list (`#/residents`) and one resident's view (`#/resident/ID`): device health cards, alarms, timeline and vital-sign/activity charts.

import { api, seg, el, fill, onLive, debounce, ageSpan, fmtTime, fmtFull, humanKind, humanize } from './api.js';
import { priorityBadge, stateText, isOpen } from './inbox.js';
import { seriesPanel } from './chart.js';

const LOW_BATTERY = 20;

// ---------------------------------------------------------------------------------------
// Residents list.

export function renderList(root) {
  let alive = true;
  const body = el('div', { class: 'resident-grid', 'aria-live': 'polite' }, el('p', { class: 'muted', text: 'Loading residents…' }));
  const filter = el('input', { type: 'search', class: 'filter', placeholder: 'Filter by id or zone', 'aria-label': 'Filter residents', 'data-testid': 'residents-filter' });
  root.append(el('section', { class: 'view residents', 'data-testid': 'residents-view' },
    el('div', { class: 'view-head' }, el('h1', { text: 'Residents' }), filter),
    body));
  let rows = [];

  async function load() {
    try {
      const r = await api('/api/residents', { quiet: true });
      if (!alive) return;
      rows = (r && Array.isArray(r.residents) ? r.residents : []).slice();
      rows.sort((a, b) => (b.open_alarms || 0) - (a.open_alarms || 0) || String(a.id).localeCompare(String(b.id), undefined, { numeric: true }));
      draw();
    } catch (e) {
      if (!alive || e.status === 401) return;
      body.replaceChildren(el('p', { class: 'error-text', text: `Could not load residents: ${e.message}` }));
    }
  }

  function draw() {
    const f = filter.value.trim().toLowerCase();
    const shown = rows.filter((r) => !f || `${r.id} ${r.zone} ${r.site}`.toLowerCase().includes(f));
    if (!shown.length) {
      body.replaceChildren(el('p', { class: 'muted', text: rows.length ? 'No resident matches the filter.' : 'No residents in your zones.' }));
      return;
    }
    body.replaceChildren(...shown.map((r) =>
      el('a', { class: `resident-card card${r.open_alarms ? ' has-alarms' : ''}`, href: `#/resident/${encodeURIComponent(r.id)}`, 'data-resident-id': r.id },
        el('div', { class: 'resident-card-head' },
          el('strong', { class: 'resident-id', text: r.id }),
          r.open_alarms ? el('span', { class: 'pill pill-alarm', text: `${r.open_alarms} open alarm${r.open_alarms === 1 ? '' : 's'}` }) : el('span', { class: 'pill pill-ok', text: 'no open alarms' })),
        el('div', { class: 'muted', text: [r.site, r.zone].filter(Boolean).join(' / ') }),
        el('div', { class: 'small', text: (r.devices || []).join(', ') || 'no devices' }))));
  }

  filter.addEventListener('input', draw);
  const reload = debounce(load, 400);
  const off = onLive(() => reload());
  load();
  return () => {
    alive = false;
    off();
    reload.cancel();
  };
}

// ---------------------------------------------------------------------------------------
// One resident.

const LIVENESS_TEXT = { ok: 'Online', late: 'Late', lost: 'Lost', unknown: 'Not heard from' };

/** A device health card (also used by the street view). */
export function deviceCard(d) {
  const battery = d.battery_pct;
  const low = battery !== null && battery !== undefined && battery < LOW_BATTERY;
  return el('article', { class: `device-card card live-${d.liveness || 'unknown'}${low ? ' low-battery' : ''}`, 'data-device-id': d.id, 'data-liveness': d.liveness || 'unknown' },
    el('header', { class: 'device-card-head' },
      el('strong', { class: 'device-id', text: d.id }),
      el('span', { class: 'muted', text: humanize(d.kind) })),
    el('dl', { class: 'device-facts' },
      el('dt', { text: 'Status' }),
      el('dd', {}, el('span', { class: `pill live-pill live-${d.liveness || 'unknown'}`, 'data-testid': 'liveness', text: LIVENESS_TEXT[d.liveness] || humanize(d.liveness) })),
      el('dt', { text: 'Last seen' }),
      el('dd', {}, d.last_seen_ms ? ageSpan(d.last_seen_ms) : 'never'),
      el('dt', { text: 'Battery' }),
      el('dd', {}, battery === null || battery === undefined ? '—' : batteryMeter(battery)),
      el('dt', { text: 'Firmware' }),
      el('dd', { text: d.firmware || '—' }),
      d.alarm_status && d.alarm_status !== 'normal' ? [el('dt', { text: 'Alarms' }), el('dd', {}, el('span', { class: `pill pill-${d.alarm_status === 'alarm' ? 'alarm' : 'unknown'}`, text: d.alarm_status }))] : null),
    low ? el('p', { class: 'warn', 'data-testid': 'low-battery', role: 'note', text: `Low battery (${battery} %): replace or charge soon.` }) : null);
}

export function batteryMeter(pct) {
  const p = Math.max(0, Math.min(100, Number(pct)));
  const low = p < LOW_BATTERY;
  return el('span', { class: `battery${low ? ' battery-low' : ''}`, title: `${p} %` },
    el('span', { class: 'battery-bar', 'aria-hidden': 'true' }, el('span', { class: 'battery-fill', style: `width:${p}%` })),
    el('span', { class: 'battery-text', text: `${p} %` }));
}

const WHAT_TEXT = { alarm: 'Alarm', action: 'Action', event: 'Event' };

function timelineItem(t) {
  return el('li', { class: `tl tl-${t.what || 'event'}`, 'data-what': t.what || 'event' },
    el('time', { class: 'tl-time', datetime: new Date(t.t_ms).toISOString(), title: fmtFull(t.t_ms), text: fmtTime(t.t_ms) }),
    el('span', { class: `tl-what tl-what-${t.what || 'event'}`, text: WHAT_TEXT[t.what] || humanize(t.what) }),
    el('span', { class: 'tl-text', text: t.text || '' }),
    t.device ? el('span', { class: 'tl-device muted', text: t.device }) : null,
    t.alarm_id !== null && t.alarm_id !== undefined ? el('a', { class: 'tl-link', href: `#/inbox/${encodeURIComponent(t.alarm_id)}`, text: `alarm #${t.alarm_id}` }) : null);
}

function alarmLine(a) {
  return el('li', { class: `mini-alarm${isOpen(a) ? ' open' : ''}` },
    priorityBadge(a.priority),
    el('a', { href: `#/inbox/${encodeURIComponent(a.id)}`, class: 'mini-alarm-kind', text: humanKind(a.kind) }),
    el('span', { class: `state state-${a.state}`, text: stateText(a.state) }),
    ageSpan(a.raised_ms),
    a.disposition ? el('span', { class: 'muted', text: a.disposition }) : null);
}

export function render(root, { param }) {
  const id = param;
  let alive = true;
  const charts = [];
  let chartKey = '';
  let showAll = false;

  const title = el('h1', {}, 'Resident ', el('span', { text: id || '' }));
  const sub = el('p', { class: 'muted' });
  const alarmsBox = el('div', { class: 'resident-alarms' });
  const devicesBox = el('div', { class: 'device-grid' });
  const timeline = el('ol', { class: 'timeline', 'data-testid': 'resident-timeline' });
  const more = el('button', { type: 'button', class: 'btn', hidden: true, text: 'Show the whole timeline' });
  const chartsBox = el('div', { class: 'chart-grid' });
  const status = el('p', { class: 'muted', text: 'Loading…' });

  root.append(el('section', { class: 'view resident', 'data-testid': 'resident-view', 'data-resident-id': id },
    el('div', { class: 'view-head' },
      el('div', {}, el('a', { href: '#/residents', class: 'back', text: '← Residents' }), title, sub)),
    status,
    el('h2', { text: 'Alarms' }), alarmsBox,
    el('h2', { text: 'Devices' }), devicesBox,
    el('div', { class: 'resident-cols' },
      el('section', { class: 'resident-timeline-box' }, el('h2', { text: 'Timeline' }), timeline, more),
      el('section', { class: 'resident-charts' }, el('h2', { text: 'Vital signs and activity' }), chartsBox))));

  more.addEventListener('click', () => {
    showAll = true;
    load();
  });

  async function load() {
    let r;
    try {
      r = await api(`/api/residents/${seg(id)}`, { quiet: true });
    } catch (e) {
      if (!alive || e.status === 401) return;
      status.textContent = e.status === 404 ? `Resident ${id} not found (or not in your zones).` : `Could not load resident ${id}: ${e.message}`;
      status.className = 'error-text';
      status.hidden = false;
      return;
    }
    if (!alive) return;
    status.hidden = true;
    sub.textContent = [r.site && `Site ${r.site}`, r.zone && `Zone ${r.zone}`].filter(Boolean).join(' · ');

    const alarms = Array.isArray(r.alarms) ? r.alarms : [];
    const open = alarms.filter(isOpen);
    fill(alarmsBox,
      open.length ? el('p', { class: 'warn-strong', text: `${open.length} open alarm${open.length === 1 ? '' : 's'}` }) : el('p', { class: 'calm', text: 'No open alarms' }),
      alarms.length ? el('ul', { class: 'mini-alarms' }, alarms.slice(0, 8).map(alarmLine)) : null);

    const devices = Array.isArray(r.devices) ? r.devices : [];
    devicesBox.replaceChildren(...(devices.length ? devices.map((d) => (typeof d === 'string' ? deviceCard({ id: d }) : deviceCard(d))) : [el('p', { class: 'muted', text: 'No devices registered.' })]));

    const tl = Array.isArray(r.timeline) ? r.timeline : [];
    const limit = showAll ? tl.length : 50;
    timeline.replaceChildren(...(tl.length ? tl.slice(0, limit).map(timelineItem) : [el('li', { class: 'tl muted', text: 'Nothing recorded yet.' })]));
    more.hidden = tl.length <= limit;

    const series = Array.isArray(r.series) ? r.series : [];
    const key = JSON.stringify(series.map((s) => [s.device, s.metric]));
    if (key !== chartKey) {
      chartKey = key;
      charts.splice(0).forEach((c) => c.destroy());
      chartsBox.replaceChildren();
      if (!series.length) chartsBox.append(el('p', { class: 'muted', text: 'No recorded series for this resident.' }));
      for (const s of series) charts.push(seriesPanel(chartsBox, { device: s.device, metric: s.metric }));
    }
  }

  const reload = debounce(load, 500);
  const off = onLive(() => reload());
  load();
  return () => {
    alive = false;
    off();
    reload.cancel();
    charts.splice(0).forEach((c) => c.destroy());
  };
}

