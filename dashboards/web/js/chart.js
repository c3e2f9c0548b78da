// chart.js — owns time-series charts: a thin uPlot wrapper (drag-to-zoom, reset, touch) and the series panel (range, raw/bucketed, fetching /api/series).

import { api, el, humanize, num, fmtTime, fmtDuration } from './api.js';

/** Ranges offered, with the bucket width used when bucketed (≈ 60–170 buckets). */
export const RANGES = [
  { key: '1h', label: '1 h', step: '1m' },
  { key: '6h', label: '6 h', step: '5m' },
  { key: '24h', label: '24 h', step: '15m' },
  { key: '7d', label: '7 d', step: '1h' },
];

export const AGGS = ['mean', 'min', 'max', 'last', 'count', 'sum'];

const COLORS = { line: '#5cc8ff', fill: 'rgba(92,200,255,0.12)', axis: '#c9d3de', grid: 'rgba(255,255,255,0.09)' };

/**
 * A time chart in `container`. `set(points, {from, to, bucketed})` draws `[[ms, value]]`;
 * the x range is always the requested range, drag-select zooms, Reset zooms back.
 */
export function timeChart(container, { label = 'value', height = 240 } = {}) {
  const host = el('div', { class: 'chart-plot' });
  const reset = el('button', { type: 'button', class: 'btn btn-small chart-reset', 'data-testid': 'chart-reset', hidden: true, text: 'Reset zoom' });
  container.append(host);
  let plot = null;
  let full = null;
  let ro = null;
  let unTouch = null;

  reset.addEventListener('click', () => {
    if (plot && full) plot.setScale('x', { min: full[0], max: full[1] });
  });

  function zoomed(u) {
    if (!full) return false;
    const { min, max } = u.scales.x;
    const eps = (full[1] - full[0]) * 1e-6;
    return min > full[0] + eps || max < full[1] - eps;
  }

  function destroyPlot() {
    if (ro) ro.disconnect();
    ro = null;
    if (unTouch) unTouch();
    unTouch = null;
    if (plot) plot.destroy();
    plot = null;
  }

  function set(points, { from, to, bucketed = false } = {}) {
    destroyPlot();
    host.replaceChildren();
    if (typeof window.uPlot !== 'function') {
      host.append(el('p', { class: 'chart-msg', text: 'Charts are unavailable (uPlot did not load).' }));
      return;
    }
    const xs = [];
    const ys = [];
    const first = points.length ? points[0][0] : null;
    const last = points.length ? points[points.length - 1][0] : null;
    // Empty edge points make the x axis span the whole requested range.
    if (from !== undefined && (first === null || from < first)) {
      xs.push(from / 1000);
      ys.push(null);
    }
    for (const [t, v] of points) {
      xs.push(t / 1000);
      ys.push(v === null || v === undefined || !Number.isFinite(Number(v)) ? null : Number(v));
    }
    if (to !== undefined && (last === null || to > last)) {
      xs.push(to / 1000);
      ys.push(null);
    }
    full = [xs[0], xs[xs.length - 1]];
    const width = Math.max(280, host.clientWidth || container.clientWidth || 600);
    const opts = {
      width,
      height,
      scales: { x: { time: true } },
      series: [
        { label: 'Time', value: (u, v) => (v === null ? '—' : fmtTime(v * 1000)) },
        {
          label,
          stroke: COLORS.line,
          fill: COLORS.fill,
          width: 2,
          spanGaps: false,
          points: { show: points.length <= 120, size: 6 },
          paths: bucketed && window.uPlot.paths && window.uPlot.paths.stepped ? window.uPlot.paths.stepped({ align: 1 }) : undefined,
          value: (u, v) => (v === null || v === undefined ? '—' : num(v, Math.abs(v) >= 100 ? 0 : 2)),
        },
      ],
      axes: [
        { stroke: COLORS.axis, values: timeTicks, space: 70, grid: { stroke: COLORS.grid }, ticks: { stroke: COLORS.grid }, font: '13px system-ui, sans-serif' },
        { stroke: COLORS.axis, grid: { stroke: COLORS.grid }, ticks: { stroke: COLORS.grid }, size: 64, font: '13px system-ui, sans-serif' },
      ],
      cursor: { drag: { x: true, y: false, setScale: true }, points: { size: 8 } },
      legend: { show: true, live: true },
      hooks: {
        setScale: [
          (u, key) => {
            if (key === 'x') reset.hidden = !zoomed(u);
          },
        ],
      },
    };
    plot = new window.uPlot(opts, [xs, ys], host);
    unTouch = touchDrag(plot);
    if (typeof ResizeObserver === 'function') {
      ro = new ResizeObserver(() => {
        const w = host.clientWidth;
        if (plot && w > 0 && Math.abs(w - plot.width) > 2) plot.setSize({ width: w, height });
      });
      ro.observe(host);
    }
    reset.hidden = true;
  }

  function clear() {
    destroyPlot();
    host.replaceChildren();
    reset.hidden = true;
  }

  return { set, clear, reset, host, destroy: () => { destroyPlot(); host.remove(); } };
}

/**
 * uPlot drags with the mouse only: turn a one-finger horizontal drag (pen, touch) into
 * the same mouse events so tablets can zoom too. Vertical swipes still scroll the page.
 */
function touchDrag(u) {
  const over = u.over;
  if (!over || typeof PointerEvent !== 'function') return () => {};
  over.style.touchAction = 'pan-y';
  let id = null;
  let lastX = 0;
  let lastY = 0;
  const fire = (target, type, e, dx = 0, dy = 0) =>
    target.dispatchEvent(new MouseEvent(type, {
      bubbles: true, cancelable: true, view: window, button: 0, buttons: type === 'mouseup' ? 0 : 1,
      clientX: e.clientX, clientY: e.clientY, movementX: dx, movementY: dy,
    }));
  const down = (e) => {
    if (e.pointerType === 'mouse' || id !== null) return;
    id = e.pointerId;
    lastX = e.clientX;
    lastY = e.clientY;
    try { over.setPointerCapture(id); } catch { /* not capturable */ }
    e.preventDefault();
    fire(over, 'mouseenter', e);
    fire(over, 'mousedown', e);
  };
  const move = (e) => {
    if (e.pointerId !== id) return;
    const dx = e.clientX - lastX || 1;
    const dy = e.clientY - lastY;
    lastX = e.clientX;
    lastY = e.clientY;
    fire(over, 'mousemove', e, dx, dy);
  };
  const up = (e) => {
    if (e.pointerId !== id) return;
    id = null;
    fire(document, 'mouseup', e);
  };
  over.addEventListener('pointerdown', down);
  over.addEventListener('pointermove', move);
  over.addEventListener('pointerup', up);
  over.addEventListener('pointercancel', up);
  return () => {
    over.removeEventListener('pointerdown', down);
    over.removeEventListener('pointermove', move);
    over.removeEventListener('pointerup', up);
    over.removeEventListener('pointercancel', up);
  };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n) => String(n).padStart(2, '0');

/** X-axis labels in local 24-hour time, with the date under the first tick of each day. */
function timeTicks(u, splits) {
  const span = splits.length > 1 ? splits[splits.length - 1] - splits[0] : 0;
  let prevDay = null;
  return splits.map((s) => {
    const d = new Date(s * 1000);
    const day = `${d.getDate()} ${MONTHS[d.getMonth()]}`;
    const hm = `${two(d.getHours())}:${two(d.getMinutes())}`;
    const first = day !== prevDay;
    prevDay = day;
    if (span >= 3 * 86400) return d.getHours() === 0 && d.getMinutes() === 0 ? day : `${day}\n${hm}`;
    if (span < 120) return `${hm}:${two(d.getSeconds())}${first ? `\n${day}` : ''}`;
    return first ? `${hm}\n${day}` : hm;
  });
}

/** `heart_rate_bpm` → `Heart rate bpm`. */
export function metricLabel(metric) {
  return humanize(metric);
}

/** Builds the `/api/series` query of a panel's settings. */
export function seriesUrl({ device, metric, range, mode, agg }) {
  const r = RANGES.find((x) => x.key === range) || RANGES[0];
  const q = new URLSearchParams({ device, metric, from: `now-${r.key}`, to: 'now' });
  if (mode === 'bucketed') {
    q.set('step', r.step);
    q.set('agg', agg || 'mean');
  }
  return `/api/series?${q}`;
}

/**
 * One chart of one series with its controls: Raw / Bucketed, aggregate, range
 * (1 h, 6 h, 24 h, 7 d) and Reset zoom. Returns `{destroy, reload}`.
 */
export function seriesPanel(container, { device, metric, title, range = '6h', mode = 'raw', agg = 'mean' }) {
  const state = { range, mode, agg };
  let seq = 0;
  let alive = true;

  const modeBtns = ['raw', 'bucketed'].map((m) =>
    el('button', { type: 'button', class: 'seg-btn', 'data-mode': m, 'aria-pressed': String(state.mode === m), text: m === 'raw' ? 'Raw' : 'Bucketed', onclick: () => { state.mode = m; load(); } }));
  const aggSel = el('select', { class: 'agg-select', 'aria-label': 'Aggregate', 'data-testid': 'chart-agg', onchange: () => { state.agg = aggSel.value; load(); } },
    AGGS.map((a) => el('option', { value: a, text: a, selected: a === state.agg })));
  const rangeBtns = RANGES.map((r) =>
    el('button', { type: 'button', class: 'seg-btn', 'data-range': r.key, 'aria-pressed': String(state.range === r.key), text: r.label, onclick: () => { state.range = r.key; load(); } }));
  const body = el('div', { class: 'chart-body' });
  const meta = el('p', { class: 'chart-meta' });
  const chart = timeChart(body, { label: metricLabel(metric) });
  const msg = el('p', { class: 'chart-msg', hidden: true });
  body.append(msg);

  const card = el('section', { class: 'chart-card', 'data-testid': 'series-chart', 'data-device': device, 'data-metric': metric },
    el('header', { class: 'chart-head' },
      el('h3', { class: 'chart-title' }, title || metricLabel(metric), ' ', el('small', { text: device })),
      el('div', { class: 'chart-controls' },
        el('div', { class: 'seg', role: 'group', 'aria-label': 'Raw or bucketed', 'data-testid': 'chart-mode' }, modeBtns),
        aggSel,
        el('div', { class: 'seg', role: 'group', 'aria-label': 'Range', 'data-testid': 'chart-range' }, rangeBtns),
        chart.reset,
      ),
    ),
    body,
    meta,
  );
  container.append(card);

  function showMsg(text, kind) {
    chart.clear();
    msg.textContent = text;
    msg.className = `chart-msg ${kind ? `chart-msg-${kind}` : ''}`;
    msg.hidden = false;
    msg.setAttribute('data-testid', kind === 'empty' ? 'chart-empty' : 'chart-message');
  }

  async function load() {
    const my = ++seq;
    for (const b of modeBtns) b.setAttribute('aria-pressed', String(b.dataset.mode === state.mode));
    for (const b of rangeBtns) b.setAttribute('aria-pressed', String(b.dataset.range === state.range));
    aggSel.hidden = state.mode !== 'bucketed';
    card.dataset.mode = state.mode;
    card.dataset.range = state.range;
    card.setAttribute('aria-busy', 'true');
    meta.textContent = 'Loading…';
    let res;
    try {
      res = await api(seriesUrl({ device, metric, ...state }), { quiet: true });
    } catch (e) {
      if (!alive || my !== seq) return;
      card.removeAttribute('aria-busy');
      meta.textContent = '';
      if (e.status === 404) showMsg('no data in this range', 'empty');
      else if (e.status === 400 && state.mode === 'raw') showMsg(`${e.message} — switch to Bucketed for this range.`, 'error');
      else showMsg(e.message, 'error');
      return;
    }
    if (!alive || my !== seq) return;
    card.removeAttribute('aria-busy');
    const points = Array.isArray(res && res.points) ? res.points : [];
    if (!points.length) {
      showMsg('no data in this range', 'empty');
      meta.textContent = '';
      return;
    }
    msg.hidden = true;
    chart.set(points, { from: res.from, to: res.to, bucketed: state.mode === 'bucketed' });
    let lo = Infinity;
    let hi = -Infinity;
    for (const p of points) {
      if (Number.isFinite(p[1])) {
        lo = Math.min(lo, p[1]);
        hi = Math.max(hi, p[1]);
      }
    }
    const lastP = points[points.length - 1];
    meta.textContent = [
      `${points.length} ${state.mode === 'bucketed' ? 'buckets' : 'points'}`,
      res.step ? `step ${fmtDuration(res.step / 1000)}, ${res.agg || state.agg}` : 'raw readings',
      lo <= hi ? `min ${num(lo, 2)} · max ${num(hi, 2)}` : null,
      lastP ? `latest ${num(lastP[1], 2)} at ${fmtTime(lastP[0])}` : null,
      'drag across the chart to zoom',
    ].filter(Boolean).join(' · ');
  }

  load();
  return {
    reload: load,
    destroy() {
      alive = false;
      chart.destroy();
      card.remove();
    },
  };
}
