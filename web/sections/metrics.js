// KPI charts of one service over 5 min / 1 h / 24 h / 7 d: requests, latency, status codes per release,
// healthy count, CPU, memory; deploy and alarm events marked on the time axis. Refreshed on each metrics tick.
import { api } from '../api.js';
import { disposeCharts, timeChart } from '../charts.js';
import { bytes, h, ms } from '../dom.js';

const RANGES = ['5m', '1h', '24h', '7d'];

/** Aligns series that have their own bucket times onto one time axis (null where a series has no bucket). */
function align(seriesList, pick) {
  const times = [...new Set(seriesList.flatMap((s) => s.points.map((p) => p.at)))].sort((a, b) => a - b);
  const lines = seriesList.map((s) => {
    const byAt = new Map(s.points.map((p) => [p.at, p]));
    return times.map((t) => (byAt.has(t) ? pick(byAt.get(t)) : null));
  });
  return { times, lines };
}

export default {
  id: 'metrics',
  title: 'Metrics',
  async mount(el, { app, status, query, hashFor }) {
    const range = RANGES.includes(query.get('range')) ? query.get('range') : '1h';
    const service = status.services.some((s) => s.name === query.get('service'))
      ? query.get('service')
      : (status.services[0]?.name ?? '');
    const picker = h(
      'div',
      { class: 'toolbar' },
      h(
        'nav',
        { 'aria-label': 'Time range' },
        RANGES.map((r) =>
          h(
            'a',
            {
              href: hashFor({ range: r, service }),
              class: 'chip',
              'aria-current': r === range ? 'true' : false,
            },
            r,
          ),
        ),
      ),
      status.services.length > 1
        ? h(
            'nav',
            { 'aria-label': 'Service' },
            status.services.map((s) =>
              h(
                'a',
                {
                  href: hashFor({ range, service: s.name }),
                  class: 'chip',
                  'aria-current': s.name === service ? 'true' : false,
                },
                s.name,
              ),
            ),
          )
        : null,
    );
    const charts = h('div', { class: 'charts' });
    el.replaceChildren(picker, charts);
    const path = `/v1/apps/${encodeURIComponent(app)}`;
    const q = `since=${range}&service=${encodeURIComponent(service)}`;

    const render = async () => {
      const [byService, byRelease, events] = await Promise.all([
        api.get(`${path}/metrics?${q}`),
        api.get(`${path}/metrics?${q}&by=release`),
        api.get(`/v1/events?app=${encodeURIComponent(app)}&limit=2000`),
      ]);
      const marks = events.filter(
        (e) =>
          e.at >= byService.from && (e.kind.startsWith('deployment.') || e.kind === 'alarm.state_changed'),
      );
      const width = charts.clientWidth > 640 ? charts.clientWidth / 2 - 40 : charts.clientWidth - 8;
      const chart = (title, seriesList, picks, format) => {
        const lines = [];
        let times = [];
        for (const [label, pick, list] of picks) {
          const aligned = align(list ?? seriesList, pick);
          times = aligned.times;
          lines.push(
            ...aligned.lines.map((values, i) => ({
              label: typeof label === 'function' ? label((list ?? seriesList)[i]) : label,
              values,
            })),
          );
        }
        return timeChart({ title, times, lines, marks, format, width });
      };
      const svc = byService.series;
      const releases = byRelease.series;
      const counts = (v) => String(Math.round(v));
      const children = [
        chart('Requests per minute', svc, [['requests/min', (p) => p.rpm]], (v) => v.toFixed(v < 10 ? 1 : 0)),
        chart(
          'Latency',
          svc,
          [
            ['p50', (p) => p.p50],
            ['p95', (p) => p.p95],
            ['p99', (p) => p.p99],
          ],
          ms,
        ),
        statusChart(releases, marks, width),
        chart(
          'Healthy instances',
          svc,
          [
            ['healthy', (p) => p.healthy],
            ['unhealthy', (p) => p.unhealthy],
          ],
          counts,
        ),
        chart('CPU (100% = one core)', svc, [['cpu', (p) => p.cpuPercent]], (v) => `${v.toFixed(1)}%`),
        chart('Memory per instance', svc, [['memory', (p) => p.memoryBytes]], bytes),
      ];
      disposeCharts(charts);
      charts.replaceChildren(
        h(
          'p',
          { class: 'help' },
          `${service}, last ${range}, ${byService.resolutionMs / 1000}s buckets. Dashed lines: deploys (blue), alarms (red).`,
        ),
        ...children,
      );
    };
    await render();
    return { onTick: () => void render().catch(() => undefined), dispose: () => disposeCharts(charts) };
  },
};

/** Responses by class for each release (the series of `by=release`), the proxy's own 502-504 apart. */
function statusChart(releases, marks, width) {
  const classes = [
    ['2xx', (p) => p.s2xx],
    ['4xx', (p) => p.s4xx],
    ['5xx', (p) => p.s5xx],
    ['502-504', (p) => p.e502 + p.e503 + p.e504],
  ];
  const times = [...new Set(releases.flatMap((s) => s.points.map((p) => p.at)))].sort((a, b) => a - b);
  const lines = [];
  for (const series of releases) {
    const byAt = new Map(series.points.map((p) => [p.at, p]));
    for (const [name, pick] of classes) {
      const values = times.map((t) => (byAt.has(t) ? pick(byAt.get(t)) : null));
      if (name !== '2xx' && values.every((v) => !v)) continue;
      lines.push({ label: `v${series.release} ${name}`, values });
    }
  }
  return timeChart({
    title: 'Responses by status, per release',
    times,
    lines,
    marks,
    format: (v) => String(Math.round(v)),
    width,
  });
}
