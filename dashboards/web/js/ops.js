// ops.js — owns the operations view (`#/ops`): the gateway health panel (ingest rate, rejections, export spool, answer-time KPIs, polled every 5 s) and the sortable, filterable device table.

import { api, el, onLive, debounce, ageSpan, fmtDuration, humanize, num } from './api.js';
import { batteryMeter } from './resident.js';

const LIVENESS_RANK = { lost: 0, late: 1, unknown: 2, ok: 3 };

const COLUMNS = [
  { key: 'id', label: 'Device' },
  { key: 'kind', label: 'Kind' },
  { key: 'where', label: 'Site / zone', value: (d) => `${d.site || ''}/${d.zone || ''}` },
  { key: 'liveness', label: 'Liveness', value: (d) => LIVENESS_RANK[d.liveness] ?? 9 },
  { key: 'last_seen_ms', label: 'Last seen', value: (d) => d.last_seen_ms ?? -1 },
  { key: 'battery_pct', label: 'Battery', value: (d) => d.battery_pct ?? 999 },
  { key: 'firmware', label: 'Firmware' },
  { key: 'alarm_status', label: 'Alarms', value: (d) => ({ alarm: 0, unknown: 1, normal: 2 }[d.alarm_status] ?? 3) },
];

export function render(root) {
  let alive = true;

  // ---- health

  const health = el('div', { class: 'health-grid', 'data-testid': 'ops-health', 'aria-live': 'polite' }, el('p', { class: 'muted', text: 'Loading…' }));
  let prev = null; // {accepted, t}
  let rate = null;

  function tile(label, value, opts = {}) {
    return el('div', { class: `tile${opts.bad ? ' tile-bad' : ''}${opts.good ? ' tile-good' : ''}`, 'data-metric': opts.id || null },
      el('div', { class: 'tile-label', text: label }),
      el('div', { class: 'tile-value', text: value }),
      opts.sub ? el('div', { class: 'tile-sub', text: opts.sub }) : null);
  }

  async function loadHealth() {
    let o;
    try {
      o = await api('/api/ops', { quiet: true });
    } catch (e) {
      if (!alive || e.status === 401) return;
      health.replaceChildren(el('p', { class: 'error-text', text: `Could not load the gateway's health: ${e.message}` }));
      return;
    }
    if (!alive || !o) return;
    const t = performance.now();
    const acc = Number(o.accepted_total) || 0;
    if (prev && acc >= prev.accepted && t > prev.t) rate = ((acc - prev.accepted) * 1000) / (t - prev.t);
    else if (prev) rate = null; // counter restarted
    prev = { accepted: acc, t };

    const x = o.export || {};
    const k = o.kpis || {};
    const overall = k.overall || {};
    const share = overall.share_within_60s;
    const target = overall.target_share ?? 0.985;
    const reasons = Object.entries(o.rejected_by_reason || {}).sort((a, b) => b[1] - a[1]);
    const teams = Object.entries(k.teams || {});

    health.replaceChildren(
      el('div', { class: 'tiles' },
        tile('Ingest rate', rate === null ? 'measuring…' : `${num(rate, rate < 10 ? 2 : 0)} /s`, { id: 'ingest-rate', sub: 'readings accepted per second (last 5 s)' }),
        tile('Accepted', num(acc), { id: 'accepted', sub: `since start, ${fmtDuration(o.uptime_s)} ago` }),
        tile('Rejected', num(o.rejected_total), { id: 'rejected', bad: Number(o.rejected_total) > 0 }),
        o.queue_depth !== undefined ? tile('Queue', num(o.queue_depth), { id: 'queue' }) : null,
        o.connected !== undefined ? tile('Connected devices', num(o.connected), { id: 'connected' }) : null,
        tile('Export spool', x.enabled ? `${num(x.spool_depth)} batches` : 'export off', {
          id: 'spool', bad: !!x.stalled || Number(x.spool_depth) > 0,
          sub: x.stalled ? 'STALLED: the spool cannot be written' : x.enabled ? (Number(x.spool_depth) > 0 ? 'waiting to reach InfluxDB' : 'up to date') : 'InfluxDB export not configured',
        }),
        tile(`Answered within 60 s (${k.hours || 24} h)`, share === null || share === undefined ? 'no answers' : `${num(share * 100, 1)} %`, {
          id: 'answer-share', bad: share !== null && share !== undefined && share < target, good: share !== null && share !== undefined && share >= target,
          sub: `target ${num(target * 100, 1)} % · ${num(overall.answered)} answered`,
        }),
        tile('Time to answer', overall.p50_s === null || overall.p50_s === undefined ? '—' : `p50 ${fmtDuration(overall.p50_s)}`, {
          id: 'answer-time', sub: `p90 ${fmtDuration(overall.p90_s)} · max ${fmtDuration(overall.max_s)}`,
        })),
      el('div', { class: 'health-cols' },
        el('section', {},
          el('h3', { text: 'Rejections by reason' }),
          reasons.some(([, n]) => n > 0)
            ? el('table', { class: 'table table-compact', 'data-testid': 'ops-rejections' },
              el('tbody', {}, reasons.filter(([, n]) => n > 0).map(([r, n]) => el('tr', { 'data-reason': r }, el('td', { text: humanize(r) }), el('td', { class: 'num', text: num(n) })))))
            : el('p', { class: 'calm', text: 'No readings rejected.' })),
        el('section', {},
          el('h3', { text: 'Answer times by team' }),
          teams.length
            ? el('table', { class: 'table table-compact', 'data-testid': 'ops-kpis' },
              el('thead', {}, el('tr', {}, ['Team', 'Answered', '≤ 60 s', 'p50', 'p90', 'Max'].map((h) => el('th', { text: h })))),
              el('tbody', {}, teams.map(([team, s]) => el('tr', { class: s.share_within_60s !== null && s.share_within_60s < (s.target_share ?? 0.985) ? 'bad' : '' },
                el('td', { text: team }),
                el('td', { class: 'num', text: num(s.answered) }),
                el('td', { class: 'num', text: s.share_within_60s === null || s.share_within_60s === undefined ? '—' : `${num(s.share_within_60s * 100, 1)} %` }),
                el('td', { class: 'num', text: fmtDuration(s.p50_s) }),
                el('td', { class: 'num', text: fmtDuration(s.p90_s) }),
                el('td', { class: 'num', text: fmtDuration(s.max_s) })))))
            : el('p', { class: 'muted', text: 'No alarms answered in this window.' }))));
  }

  // ---- devices

  let devices = [];
  let sort = { key: 'liveness', dir: 1 };
  const filter = el('input', { type: 'search', class: 'filter', 'data-testid': 'ops-filter', placeholder: 'Filter devices (id, kind, zone, status…)', 'aria-label': 'Filter devices' });
  const countLine = el('p', { class: 'muted small' });
  const headRow = el('tr');
  const tbody = el('tbody');
  const table = el('table', { class: 'table', 'data-testid': 'ops-devices' }, el('thead', {}, headRow), tbody);

  function drawHead() {
    headRow.replaceChildren(...COLUMNS.map((c) => {
      const active = sort.key === c.key;
      return el('th', { scope: 'col', 'data-sort': c.key, 'aria-sort': active ? (sort.dir > 0 ? 'ascending' : 'descending') : 'none' },
        el('button', {
          type: 'button', class: 'th-btn', text: `${c.label}${active ? (sort.dir > 0 ? ' ▲' : ' ▼') : ''}`,
          onclick: () => {
            sort = { key: c.key, dir: active ? -sort.dir : 1 };
            drawHead();
            drawRows();
          },
        }));
    }));
  }

  function value(d, c) {
    return c.value ? c.value(d) : d[c.key] ?? '';
  }

  function drawRows() {
    const f = filter.value.trim().toLowerCase();
    const col = COLUMNS.find((c) => c.key === sort.key) || COLUMNS[0];
    const shown = devices.filter((d) => !f || [d.id, d.kind, d.site, d.zone, d.liveness, d.firmware, d.alarm_status, d.resident, d.asset, d.trust]
      .filter(Boolean).join(' ').toLowerCase().includes(f));
    shown.sort((a, b) => {
      const x = value(a, col);
      const y = value(b, col);
      const c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true });
      return c * sort.dir || String(a.id).localeCompare(String(b.id), undefined, { numeric: true });
    });
    tbody.replaceChildren(...shown.map((d) => el('tr', { 'data-device-id': d.id, 'data-liveness': d.liveness },
      el('td', {}, el('strong', { text: d.id }), d.resident ? el('div', { class: 'muted small', text: `resident ${d.resident}` }) : null, d.asset ? el('div', { class: 'muted small', text: `asset ${d.asset}` }) : null),
      el('td', { text: humanize(d.kind) }),
      el('td', { text: [d.site, d.zone].filter(Boolean).join(' / ') }),
      el('td', {}, el('span', { class: `pill live-pill live-${d.liveness || 'unknown'}`, text: d.liveness || 'unknown' })),
      el('td', {}, d.last_seen_ms ? ageSpan(d.last_seen_ms) : 'never'),
      el('td', {}, d.battery_pct === null || d.battery_pct === undefined ? '—' : batteryMeter(d.battery_pct)),
      el('td', { text: d.firmware || '—' }),
      el('td', {}, el('span', { class: `pill pill-${d.alarm_status === 'alarm' ? 'alarm' : d.alarm_status === 'unknown' ? 'unknown' : 'ok'}`, text: d.alarm_status || 'normal' })))));
    countLine.textContent = `${shown.length} of ${devices.length} devices`;
  }

  async function loadDevices() {
    try {
      const list = await api('/api/devices', { quiet: true });
      if (!alive) return;
      devices = Array.isArray(list) ? list : [];
      drawRows();
    } catch (e) {
      if (!alive || e.status === 401) return;
      countLine.textContent = `Could not load devices: ${e.message}`;
    }
  }

  filter.addEventListener('input', drawRows);
  drawHead();

  root.append(el('section', { class: 'view ops', 'data-testid': 'ops-view' },
    el('div', { class: 'view-head' }, el('h1', { text: 'Operations' })),
    el('h2', { text: 'Gateway health' }),
    health,
    el('div', { class: 'view-head' }, el('h2', { text: 'Devices' }), filter),
    countLine,
    el('div', { class: 'table-wrap' }, table)));

  loadHealth();
  loadDevices();
  const healthTimer = setInterval(loadHealth, 5000);
  const reload = debounce(loadDevices, 1000);
  const off = onLive((type) => {
    if (type === 'poll' || type === 'alarm' || type === 'visible') reload();
  });

  return () => {
    alive = false;
    clearInterval(healthTimer);
    off();
    reload.cancel();
  };
}
