// street.js — owns the street view (`#/street`, `#/street/ASSET`): the SVG asset map with its legend, the asset detail (alarms, devices, charts) and the work-order table with its actions and SLA clocks.

import { api, post, seg, el, toast, modal, field, busy, onLive, debounce, fmtDuration, fmtFull, humanKind, humanize, personName } from './api.js';
import { priorityBadge } from './inbox.js';
import { seriesPanel } from './chart.js';
import { deviceCard } from './resident.js';

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs = {}, ...children) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'text') n.textContent = String(v);
    else if (k.startsWith('on') && typeof v === 'function') n.addEventListener(k.slice(2), v);
    else n.setAttribute(k, String(v));
  }
  for (const c of children.flat()) if (c) n.append(c);
  return n;
}

const STATES = [
  ['normal', 'normal — all devices reporting'],
  ['alarm', 'alarm — open alarm'],
  ['late', 'late — a device is overdue'],
  ['unknown', 'unknown — no data or explained by a root cause'],
];

const KINDS = [
  ['lamp', 'street lamp'],
  ['manhole', 'manhole'],
  ['water', 'water level'],
  ['bin', 'waste bin'],
  ['other', 'other'],
];

/** Which marker shape an asset's kind gets. */
export function shapeOf(kind) {
  const k = String(kind || '').toLowerCase();
  if (/lamp|light/.test(k)) return 'lamp';
  if (/manhole/.test(k)) return 'manhole';
  if (/water|level|flood|sump|pump/.test(k)) return 'water';
  if (/bin|waste/.test(k)) return 'bin';
  return 'other';
}

/** The marker's shape centred on 0,0 (about 26 units across). */
function shape(kind, cls) {
  switch (kind) {
    case 'lamp':
      return svg('circle', { class: cls, r: 12 });
    case 'manhole':
      return svg('rect', { class: cls, x: -11, y: -11, width: 22, height: 22, rx: 2 });
    case 'water':
      return svg('path', { class: cls, d: 'M0,-14 C6,-5 11,0 11,5 A11,10 0 0 1 -11,5 C-11,0 -6,-5 0,-14 Z' });
    case 'bin':
      return svg('path', { class: cls, d: 'M-10,-8 H10 L8,12 H-8 Z M-12,-12 H12 V-8 H-12 Z' });
    default:
      return svg('path', { class: cls, d: 'M0,-14 L14,0 L0,14 L-14,0 Z' });
  }
}

/**
 * Equirectangular projection of lat/lon onto a `w`×`h` box, fitted to the assets'
 * bounding box with `pad` units of padding (aspect ratio kept, centred).
 */
export function project(points, w, h, pad) {
  const ok = points.filter((p) => Number.isFinite(p.lat) && Number.isFinite(p.lon));
  if (!ok.length) return () => null;
  let minLat = Infinity;
  let maxLat = -Infinity;
  let minLon = Infinity;
  let maxLon = -Infinity;
  for (const p of ok) {
    minLat = Math.min(minLat, p.lat);
    maxLat = Math.max(maxLat, p.lat);
    minLon = Math.min(minLon, p.lon);
    maxLon = Math.max(maxLon, p.lon);
  }
  const k = Math.cos((((minLat + maxLat) / 2) * Math.PI) / 180) || 1;
  const spanX = Math.max((maxLon - minLon) * k, 1e-5);
  const spanY = Math.max(maxLat - minLat, 1e-5);
  const scale = Math.min((w - 2 * pad) / spanX, (h - 2 * pad) / spanY);
  const offX = (w - spanX * scale) / 2;
  const offY = (h - spanY * scale) / 2;
  const cx = (maxLon - minLon) * k < 1e-5 ? w / 2 - offX : null;
  const cy = maxLat - minLat < 1e-5 ? h / 2 - offY : null;
  return (p) => {
    if (!Number.isFinite(p.lat) || !Number.isFinite(p.lon)) return null;
    return [
      offX + (cx !== null ? cx : (p.lon - minLon) * k * scale),
      offY + (cy !== null ? cy : (maxLat - p.lat) * scale),
    ];
  };
}

function legend() {
  return el('div', { class: 'legend', 'data-testid': 'map-legend' },
    el('ul', { class: 'legend-list', 'aria-label': 'Marker colours' },
      STATES.map(([st, label]) => el('li', { 'data-state': st },
        legendSwatch('lamp', st),
        el('span', { class: 'legend-label', text: label })))),
    el('ul', { class: 'legend-list', 'aria-label': 'Marker shapes' },
      KINDS.map(([k, label]) => el('li', {},
        legendSwatch(k, 'shape'),
        el('span', { class: 'legend-label', text: label })))));
}

function legendSwatch(kind, state) {
  const s = svg('svg', { class: 'legend-swatch', viewBox: '-16 -16 32 32', width: 28, height: 28, 'aria-hidden': 'true' },
    svg('g', { class: `marker state-${state}` }, shape(kind, 'marker-shape')));
  return s;
}

// ---------------------------------------------------------------------------------------

export function render(root, { param }) {
  let alive = true;
  let assets = [];
  let selected = param || null;
  let detailCharts = [];
  let detailFor = null;

  const W = 1000;
  const H = 560;
  const map = svg('svg', { class: 'street-map', 'data-testid': 'street-map', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'Street assets map', preserveAspectRatio: 'xMidYMid meet' });
  const mapMsg = el('p', { class: 'muted', text: 'Loading the map…' });
  const unplaced = el('p', { class: 'muted small', hidden: true });
  const detail = el('div', { class: 'asset-detail-host' });
  const woBody = el('tbody');
  const woEmpty = el('p', { class: 'muted', hidden: true, text: 'No open work orders.' });
  const woTable = el('table', { class: 'table', 'data-testid': 'work-orders' },
    el('thead', {}, el('tr', {}, ['#', 'Asset', 'What', 'State', 'Assignee', 'SLA', 'Actions'].map((h) => el('th', { scope: 'col', text: h })))),
    woBody);

  root.append(el('section', { class: 'view street', 'data-testid': 'street-view' },
    el('div', { class: 'view-head' }, el('h1', { text: 'Street' })),
    el('div', { class: 'street-layout' },
      el('div', { class: 'card map-card' }, map, mapMsg, unplaced, legend()),
      detail),
    el('h2', { text: 'Open work orders' }),
    el('div', { class: 'table-wrap' }, woTable),
    woEmpty));

  // ---- map

  async function loadMap() {
    let r;
    try {
      r = await api('/api/map', { quiet: true });
    } catch (e) {
      if (!alive || e.status === 401) return;
      mapMsg.textContent = `Could not load the map: ${e.message}`;
      mapMsg.className = 'error-text';
      mapMsg.hidden = false;
      return;
    }
    if (!alive) return;
    assets = r && Array.isArray(r.assets) ? r.assets : [];
    drawMap();
    if (selected) drawDetail();
  }

  // Markers keep about the same size on screen (and a ≥ 44 px touch target) however
  // wide the map is drawn.
  let markerScale = 1;
  function rescale() {
    const w = map.getBoundingClientRect().width;
    const k = w > 0 ? Math.min(2.5, Math.max(0.8, W / w)) : 1;
    if (Math.abs(k - markerScale) < 0.02) return;
    markerScale = k;
    for (const g of map.querySelectorAll('.marker-body')) g.setAttribute('transform', `scale(${k.toFixed(3)})`);
  }
  const ro = typeof ResizeObserver === 'function' ? new ResizeObserver(rescale) : null;
  if (ro) ro.observe(map);

  function drawMap() {
    const pts = assets.map((a) => ({ ...a, lat: Number(a.lat), lon: Number(a.lon) }));
    rescale();
    const proj = project(pts, W, H, 90);
    const markers = [];
    const missing = [];
    for (const a of pts) {
      const xy = proj(a);
      if (!xy) {
        missing.push(a.label || a.id);
        continue;
      }
      const state = ['normal', 'alarm', 'late', 'unknown'].includes(a.state) ? a.state : 'unknown';
      const kind = shapeOf(a.kind);
      const g = svg('g', {
        class: `marker state-${state}${a.id === selected ? ' selected' : ''}`,
        'data-asset': a.id,
        'data-state': state,
        'data-kind': kind,
        transform: `translate(${xy[0].toFixed(1)},${xy[1].toFixed(1)})`,
        tabindex: 0,
        role: 'button',
        'aria-label': `${a.label || a.id}: ${humanize(a.kind || 'asset')}, ${state}`,
        onclick: () => select(a.id),
        onkeydown: (e) => {
          if (e.key === 'Enter' || e.key === ' ') {
            e.preventDefault();
            select(a.id);
          }
        },
      },
      svg('title', { text: `${a.label || a.id} — ${state}${(a.open_alarms || []).length ? `, ${(a.open_alarms || []).length} open alarm(s)` : ''}` }),
      svg('g', { class: 'marker-body', transform: `scale(${markerScale})` },
        svg('circle', { class: 'marker-hit', r: 30 }),
        state === 'alarm' ? svg('circle', { class: 'marker-pulse', r: 16 }) : null,
        svg('circle', { class: 'marker-ring', r: 22 }),
        shape(kind, 'marker-shape'),
        svg('text', { class: 'marker-label', y: 34, 'text-anchor': 'middle', text: a.label || a.id })));
      markers.push(g);
    }
    // Alarms drawn last, on top.
    markers.sort((x, y) => (x.dataset.state === 'alarm') - (y.dataset.state === 'alarm'));
    map.replaceChildren(svg('rect', { class: 'map-bg', x: 0, y: 0, width: W, height: H, rx: 8 }), ...markers);
    mapMsg.hidden = assets.length > 0;
    if (!assets.length) {
      mapMsg.textContent = 'No street assets are configured (or none in your zones).';
      mapMsg.className = 'muted';
    }
    unplaced.hidden = !missing.length;
    unplaced.textContent = missing.length ? `Without coordinates: ${missing.join(', ')}` : '';
  }

  function select(id) {
    selected = id;
    for (const g of map.querySelectorAll('[data-asset]')) g.classList.toggle('selected', g.getAttribute('data-asset') === id);
    const want = `#/street/${encodeURIComponent(id)}`;
    if (location.hash !== want) history.replaceState(null, '', want);
    drawDetail();
    const d = detail.firstElementChild;
    if (d && window.matchMedia('(max-width: 1099px)').matches) d.scrollIntoView({ block: 'start', behavior: 'smooth' });
  }

  function closeDetail() {
    selected = null;
    detailFor = null;
    detailCharts.splice(0).forEach((c) => c.destroy());
    detail.replaceChildren();
    for (const g of map.querySelectorAll('[data-asset].selected')) g.classList.remove('selected');
    history.replaceState(null, '', '#/street');
  }

  let deviceInfo = new Map();
  async function loadDevices() {
    try {
      const list = await api('/api/devices', { quiet: true });
      deviceInfo = new Map((Array.isArray(list) ? list : []).map((d) => [d.id, d]));
    } catch {
      /* the cards show ids only */
    }
  }

  async function drawDetail() {
    const a = assets.find((x) => x.id === selected);
    if (!a) {
      if (assets.length) {
        detail.replaceChildren(el('aside', { class: 'card asset-detail', 'data-testid': 'asset-detail' },
          el('p', { class: 'error-text', text: `Asset ${selected} is not on the map (or not in your zones).` }),
          el('button', { type: 'button', class: 'btn', text: 'Close', onclick: closeDetail })));
      }
      return;
    }
    const fresh = detailFor !== a.id;
    if (fresh) {
      detailFor = a.id;
      detailCharts.splice(0).forEach((c) => c.destroy());
    }
    await loadDevices();
    if (!alive || selected !== a.id) return;
    const alarms = a.open_alarms || [];
    const devices = a.devices || [];
    let panel = detail.querySelector('[data-testid="asset-detail"]');
    let charts = panel && !fresh ? panel.querySelector('.asset-charts') : null;
    if (!charts) charts = el('div', { class: 'asset-charts chart-grid' });
    const head = el('header', { class: 'detail-head' },
      el('div', {},
        el('h2', { class: 'detail-title', text: a.label || a.id }),
        el('p', { class: 'detail-sub' },
          el('span', { class: `pill map-pill state-${a.state}`, text: a.state || 'unknown' }),
          ` ${humanize(a.kind || 'asset')} · ${[a.site, a.zone].filter(Boolean).join(' / ')} · id ${a.id}`)),
      el('button', { type: 'button', class: 'btn detail-close', 'data-testid': 'asset-close', text: 'Close', onclick: closeDetail }));
    const alarmList = alarms.length
      ? el('ul', { class: 'mini-alarms', 'data-testid': 'asset-alarms' }, alarms.map((x) => el('li', { class: 'mini-alarm open' },
        priorityBadge(x.priority),
        el('a', { href: `#/inbox/${encodeURIComponent(x.id)}`, class: 'mini-alarm-kind', text: humanKind(x.kind) }),
        el('span', { class: 'muted', text: `#${x.id}` }))))
      : el('p', { class: 'calm', 'data-testid': 'asset-alarms', text: 'No open alarms' });
    const deviceGrid = el('div', { class: 'device-grid' }, devices.length
      ? devices.map((id) => deviceCard(deviceInfo.get(id) || { id }))
      : el('p', { class: 'muted', text: 'No devices linked to this asset.' }));
    const next = el('aside', { class: 'card asset-detail', 'data-testid': 'asset-detail', 'data-asset-id': a.id },
      head,
      el('h3', { text: 'Open alarms' }), alarmList,
      el('h3', { text: 'Devices' }), deviceGrid,
      el('h3', { text: 'Readings' }), charts);
    if (panel) panel.replaceWith(next);
    else detail.replaceChildren(next);
    if (fresh) loadCharts(a, charts);
  }

  async function loadCharts(a, host) {
    host.replaceChildren(el('p', { class: 'muted', text: 'Loading series…' }));
    const lists = await Promise.all((a.devices || []).map((d) =>
      api(`/api/series/list?device=${encodeURIComponent(d)}`, { quiet: true }).catch(() => [])));
    if (!alive || detailFor !== a.id) return;
    host.replaceChildren();
    const series = lists.flat().filter((s) => s && s.device && s.metric);
    if (!series.length) {
      host.append(el('p', { class: 'muted', text: 'No recorded series for these devices.' }));
      return;
    }
    for (const s of series) detailCharts.push(seriesPanel(host, { device: s.device, metric: s.metric }));
  }

  // ---- work orders

  const WO_ACTIONS = [
    ['accept', 'Accept', ['dispatched']],
    ['arrive', 'On site', ['dispatched', 'accepted']],
    ['fixed', 'Fixed…', ['dispatched', 'accepted', 'on_site']],
  ];
  const WO_STATE = { dispatched: 'Dispatched', accepted: 'Accepted', on_site: 'On site', fixed: 'Fixed — verifying', verified: 'Verified', cancelled: 'Cancelled' };

  async function loadOrders() {
    let r;
    try {
      r = await api('/api/work-orders?open=true', { quiet: true });
    } catch (e) {
      if (!alive || e.status === 401) return;
      woEmpty.hidden = false;
      woEmpty.textContent = `Could not load work orders: ${e.message}`;
      return;
    }
    if (!alive) return;
    const now = Date.now();
    const list = (r && Array.isArray(r.work_orders) ? r.work_orders : []).slice();
    list.sort((a, b) => (a.due_in_s ?? Infinity) - (b.due_in_s ?? Infinity));
    woBody.replaceChildren(...list.map((w) => woRow(w, now)));
    woEmpty.hidden = list.length > 0;
    woEmpty.textContent = 'No open work orders.';
    tickSla();
  }

  function woRow(w, now) {
    const dueAt = w.due_in_s !== null && w.due_in_s !== undefined ? now + w.due_in_s * 1000 : null;
    const asset = w.subject || w.device || (w.source || '').replace(/^asset:/, '') || '—';
    const sla = el('td', { class: 'sla', 'data-testid': 'sla', 'data-due-at': dueAt ?? '', title: w.due_ms ? `Due ${fmtFull(w.due_ms)}` : '' });
    const actions = WO_ACTIONS.filter(([, , states]) => states.includes(w.state)).map(([action, label]) => {
      const b = el('button', { type: 'button', class: `btn btn-action${action === 'accept' ? ' btn-primary' : ''}`, 'data-action': action, text: label });
      b.addEventListener('click', () => woAction(w, action, b));
      return b;
    });
    return el('tr', { 'data-work-order-id': w.id, 'data-state': w.state, class: w.overdue ? 'overdue' : '' },
      el('td', { text: `#${w.id}` }),
      el('td', {}, asset !== '—' && assets.some((a) => a.id === asset)
        ? el('button', { type: 'button', class: 'btn btn-link', text: asset, onclick: () => select(asset) })
        : asset),
      el('td', {},
        el('span', { class: `grade grade-${w.grade}`, title: `SLA grade ${w.grade}`, text: w.grade || '' }), ' ',
        humanKind(w.kind),
        w.alarm ? el('a', { class: 'small', href: `#/inbox/${encodeURIComponent(w.alarm)}`, text: ` alarm #${w.alarm}` }) : null,
        w.reopened ? el('span', { class: 'tag', text: `reopened ${w.reopened}×` }) : null),
      el('td', {}, el('span', { class: `wo-state wo-${w.state}`, text: WO_STATE[w.state] || humanize(w.state) })),
      el('td', { text: w.assignee ? personName(w.assignee) : (w.team ? `team ${w.team}` : '—') }),
      sla,
      el('td', {}, el('div', { class: 'actions' }, actions)));
  }

  function tickSla() {
    const now = Date.now();
    for (const td of woBody.querySelectorAll('td[data-due-at]')) {
      const v = td.getAttribute('data-due-at');
      if (!v) {
        td.textContent = '—';
        continue;
      }
      const left = (Number(v) - now) / 1000;
      const over = left < 0;
      td.textContent = over ? `overdue by ${fmtDuration(-left)}` : `${fmtDuration(left)} left`;
      td.classList.toggle('sla-overdue', over);
      td.classList.toggle('sla-soon', !over && left < 1800);
    }
  }

  function woAction(w, action, button) {
    const doIt = async (body) => {
      try {
        await post(`/api/work-orders/${seg(w.id)}/${action}`, body);
      } catch (e) {
        return e;
      }
      toast(`Work order #${w.id}: ${action === 'accept' ? 'accepted' : action === 'arrive' ? 'on site' : 'marked fixed'}`, 'ok');
      return null;
    };
    if (action === 'fixed') {
      const note = el('textarea', { 'data-testid': 'wo-note', rows: 3, maxlength: 1000, placeholder: 'What was done (optional)' });
      modal({
        title: `Mark work order #${w.id} fixed`,
        testid: 'wo-dialog',
        confirmLabel: 'Mark fixed',
        confirmTestId: 'wo-confirm',
        fields: [el('p', { class: 'dialog-note', text: 'It closes once the sensor agrees; otherwise it is reopened.' }), field('Note', note)],
        onConfirm: async ({ showError }) => {
          const body = note.value.trim() ? { note: note.value.trim() } : {};
          const err = await doIt(body);
          loadOrders();
          if (err) {
            showError(err.message);
            return false;
          }
          return true;
        },
      });
      return;
    }
    busy(button, async () => {
      await doIt({});
      await loadOrders();
    });
  }

  // ---- refresh

  const reload = debounce(() => {
    loadMap();
    loadOrders();
  }, 400);
  const off = onLive(() => reload());
  const onTick = () => tickSla();
  document.addEventListener('linli:tick', onTick);
  const slaTimer = setInterval(tickSla, 15000);

  loadMap();
  loadOrders();

  return () => {
    alive = false;
    off();
    reload.cancel();
    if (ro) ro.disconnect();
    clearInterval(slaTimer);
    document.removeEventListener('linli:tick', onTick);
    detailCharts.splice(0).forEach((c) => c.destroy());
  };
}

