// Time-series charts with uPlot (loaded as a classic script before the modules): KPI charts with deploy and
// alarm events marked on the time axis, and sparklines for the apps overview.
import { h } from './dom.js';

const COLORS = ['#2563eb', '#d97706', '#dc2626', '#059669', '#7c3aed', '#db2777', '#0891b2', '#65a30d'];

/** Marks events on the time axis: a dashed line each (deploys blue, alarms red, others grey), title on hover. */
function markersPlugin(marks) {
  return {
    hooks: {
      draw: [
        (u) => {
          const { ctx, bbox } = u;
          ctx.save();
          ctx.setLineDash([4, 3]);
          ctx.lineWidth = 1.5 * devicePixelRatio;
          for (const mark of marks) {
            const x = Math.round(u.valToPos(mark.at / 1000, 'x', true));
            if (x < bbox.left || x > bbox.left + bbox.width) continue;
            ctx.strokeStyle = mark.kind.startsWith('alarm')
              ? '#dc2626'
              : mark.kind.startsWith('deployment')
                ? '#2563eb'
                : '#6b7280';
            ctx.beginPath();
            ctx.moveTo(x, bbox.top);
            ctx.lineTo(x, bbox.top + bbox.height);
            ctx.stroke();
          }
          ctx.restore();
        },
      ],
    },
  };
}

/**
 * A chart: `lines` is [{ label, values }] over the shared `times` (epoch ms); `marks` are events
 * ({ at, kind, message }) listed under the chart too, so they are readable without the mouse.
 */
export function timeChart({ title, times, lines, marks = [], format = (v) => String(v), width }) {
  const figure = h('figure', { class: 'chart' }, h('figcaption', {}, title));
  const plotWidth = Math.max(260, Math.min(width ?? 560, 900));
  const data = [times.map((t) => t / 1000), ...lines.map((l) => l.values)];
  const plot = new uPlot(
    {
      width: plotWidth,
      height: 180,
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [{}, { values: (_u, ticks) => ticks.map(format), size: 72 }],
      series: [
        {},
        ...lines.map((l, i) => ({
          label: l.label,
          stroke: COLORS[i % COLORS.length],
          width: 1.5,
          spanGaps: false,
          value: (_u, v) => (v === null || v === undefined ? '-' : format(v)),
        })),
      ],
      plugins: [markersPlugin(marks)],
    },
    data,
  );
  figure.append(plot.root);
  figure.plot = plot;
  figure.dataset.points = String(lines.reduce((n, l) => n + l.values.filter((v) => v !== null).length, 0));
  if (marks.length > 0) {
    figure.append(
      h(
        'details',
        { class: 'marks' },
        h('summary', {}, `${marks.length} event${marks.length === 1 ? '' : 's'} marked`),
        h(
          'ul',
          {},
          marks.map((m) => h('li', {}, `${new Date(m.at).toLocaleTimeString()} ${m.kind}: ${m.message}`)),
        ),
      ),
    );
  }
  return figure;
}

/** A sparkline (no axes, no legend) of one series, with its meaning in an aria-label. */
export function sparkline({ label, times, values, color = COLORS[0], width = 120, height = 28 }) {
  const wrap = h('span', { class: 'spark', role: 'img', 'aria-label': label });
  const plot = new uPlot(
    {
      width,
      height,
      pxAlign: false,
      cursor: { show: false },
      legend: { show: false },
      scales: { x: { time: false } },
      axes: [{ show: false }, { show: false }],
      series: [{}, { stroke: color, width: 1.25, fill: `${color}22`, points: { show: false } }],
    },
    [times.map((t) => t / 1000), values],
  );
  wrap.append(plot.root);
  wrap.plot = plot;
  return wrap;
}

/** Destroys the charts under `root` before it is re-rendered (uPlot keeps window listeners until destroyed). */
export function disposeCharts(root) {
  for (const el of root.querySelectorAll('.chart, .spark')) el.plot?.destroy();
}
