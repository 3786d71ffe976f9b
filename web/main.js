// The dashboard's entry: sign-in, a hash router, the apps overview and the app page with one tab per capability.
import { api, onSignedOut } from './api.js';
import { disposeCharts, sparkline } from './charts.js';
import { badge, h } from './dom.js';
import { onLive, startLive, stopLive } from './live.js';
import { SECTIONS } from './sections/index.js';

const view = document.getElementById('view');
const crumbs = document.getElementById('crumbs');
const signOutButton = document.getElementById('signout');
/** What the current page tears down when the route changes (streams, listeners). */
let teardown = [];

function clearPage() {
  for (const fn of teardown) fn();
  teardown = [];
}

function showSignIn(message) {
  clearPage();
  stopLive();
  signOutButton.hidden = true;
  crumbs.replaceChildren();
  const input = h('input', {
    id: 'token',
    name: 'token',
    type: 'password',
    autocomplete: 'off',
    required: true,
    'aria-describedby': 'token-help',
  });
  const error = h('p', { class: 'error', role: 'alert' }, message ?? '');
  const form = h(
    'form',
    { class: 'signin', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in to Berth'),
    h('label', { for: 'token' }, 'Admin token'),
    input,
    h(
      'p',
      { id: 'token-help', class: 'help' },
      'The contents of <data-dir>/admin-token. It is exchanged for a session cookie and not kept by the browser.',
    ),
    error,
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    input.value = '';
    try {
      await api.signIn(token);
      route();
    } catch (e) {
      error.textContent = e.status === 401 ? 'Wrong token.' : `Sign-in failed: ${e.message}`;
      input.focus();
    }
  });
  view.replaceChildren(form);
  input.focus();
}

onSignedOut(() => showSignIn('Your session ended: sign in again.'));
onLive(async (message) => {
  if (message.type === 'expired') showSignIn('Your session expired: sign in again.');
  // The feed was refused (a restarted control plane forgot its sessions): ask whether the session still lives.
  if (message.type === 'closed') {
    const alive = await api.resume().catch(() => true);
    if (alive) startLive();
    else showSignIn('Your session ended: sign in again.');
  }
});
signOutButton.addEventListener('click', async () => {
  await api.signOut();
  showSignIn('Signed out.');
});

/** Parses `#/apps/shop/metrics?range=1h` into parts. */
function parseHash() {
  const [path, query] = location.hash.replace(/^#/, '').split('?');
  return {
    parts: (path || '/').split('/').filter(Boolean).map(decodeURIComponent),
    query: new URLSearchParams(query ?? ''),
  };
}

async function route() {
  clearPage();
  signOutButton.hidden = false;
  startLive();
  const { parts, query } = parseHash();
  try {
    if (parts[0] === 'apps' && parts[1]) await appPage(parts[1], parts[2] ?? SECTIONS[0].id, query);
    else await overview();
  } catch (error) {
    if (error.status === 401) return;
    view.replaceChildren(h('p', { class: 'error', role: 'alert' }, error.message));
  }
  view.focus({ preventScroll: true });
}

// Apps overview: each app's services, healthy/desired, release, deploy state, request and error-rate sparklines.
async function overview() {
  crumbs.replaceChildren(h('span', { 'aria-current': 'page' }, 'Apps'));
  const apps = await api.get('/v1/apps');
  const body = h('tbody');
  const rows = new Map();
  const render = (status) => {
    const cells = {
      spark: h('td', { class: 'sparks' }),
      deploy: h('td', {}, '…'),
    };
    const tr = h(
      'tr',
      { 'data-app': status.app },
      h('th', { scope: 'row' }, h('a', { href: `#/apps/${encodeURIComponent(status.app)}` }, status.app)),
      h(
        'td',
        {},
        status.services.map((s) =>
          h(
            'div',
            {},
            `${s.name} `,
            h('span', { class: s.healthy < s.desired ? 'warn' : '' }, `${s.healthy}/${s.desired}`),
            ' healthy',
          ),
        ),
      ),
      h('td', {}, `v${status.release}`),
      cells.deploy,
      cells.spark,
    );
    rows.set(status.app, { tr, cells });
    return tr;
  };
  body.append(...apps.map(render));
  view.replaceChildren(
    h('h1', {}, 'Apps'),
    apps.length === 0
      ? h('p', {}, 'No apps yet: deploy one with berth deploy.')
      : h(
          'div',
          { class: 'scroll' },
          h(
            'table',
            { class: 'apps' },
            h('caption', {}, `${apps.length} app${apps.length === 1 ? '' : 's'}`),
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                ['App', 'Services', 'Release', 'Deploy', 'Requests/min · 5xx rate (15 min)'].map((t) =>
                  h('th', { scope: 'col' }, t),
                ),
              ),
            ),
            body,
          ),
        ),
  );
  const fill = async (app) => {
    const row = rows.get(app);
    if (!row) return;
    const [deployments, metrics] = await Promise.all([
      api.get(`/v1/apps/${encodeURIComponent(app)}/deployments`),
      api.get(`/v1/apps/${encodeURIComponent(app)}/metrics?since=15m&by=service`),
    ]);
    const last = deployments.at(-1);
    row.cells.deploy.replaceChildren(last ? badge(last.state) : '-');
    const byAt = new Map();
    for (const series of metrics.series) {
      for (const p of series.points) {
        const sum = byAt.get(p.at) ?? { rpm: 0, requests: 0, errors: 0 };
        sum.rpm += p.rpm;
        sum.requests += p.requests;
        sum.errors += p.s5xx + p.e502 + p.e503 + p.e504;
        byAt.set(p.at, sum);
      }
    }
    const times = [...byAt.keys()].sort((a, b) => a - b);
    const rpm = times.map((t) => byAt.get(t).rpm);
    const errorRate = times.map((t) =>
      byAt.get(t).requests > 0 ? (100 * byAt.get(t).errors) / byAt.get(t).requests : null,
    );
    const nowRpm = rpm.at(-1) ?? 0;
    disposeCharts(row.cells.spark);
    row.cells.spark.replaceChildren(
      sparkline({ label: `${app} requests per minute, now ${nowRpm.toFixed(1)}`, times, values: rpm }),
      sparkline({ label: `${app} 5xx rate %`, times, values: errorRate, color: '#dc2626' }),
      h('span', { class: 'num' }, `${nowRpm.toFixed(1)} rpm`),
    );
  };
  const fillAll = () => Promise.all(apps.map((a) => fill(a.app).catch(() => undefined)));
  void fillAll();
  let pending = null;
  teardown.push(
    onLive((message) => {
      if (message.type === 'tick') void fillAll();
      if (message.type === 'event' && message.event.app && rows.has(message.event.app) && !pending) {
        // Bursts of events (a deploy) re-read the app once.
        pending = setTimeout(async () => {
          pending = null;
          const app = message.event.app;
          const status = await api.get(`/v1/apps/${encodeURIComponent(app)}`).catch(() => null);
          const old = rows.get(app);
          if (!status || !old) return;
          disposeCharts(old.tr);
          old.tr.replaceWith(render(status));
          void fill(app);
        }, 300);
      }
    }),
    () => clearTimeout(pending),
    () => disposeCharts(body),
  );
}

// The app page: a tab per capability (sections/index.js lists them; a new capability adds one file there).
async function appPage(app, sectionId, query) {
  const status = await api.get(`/v1/apps/${encodeURIComponent(app)}`);
  const section = SECTIONS.find((s) => s.id === sectionId) ?? SECTIONS[0];
  crumbs.replaceChildren(h('a', { href: '#/' }, 'Apps'), ' / ', h('span', { 'aria-current': 'page' }, app));
  const tabs = h(
    'nav',
    { class: 'tabs', 'aria-label': `${app} sections` },
    SECTIONS.map((s) =>
      h(
        'a',
        {
          href: `#/apps/${encodeURIComponent(app)}/${s.id}`,
          'aria-current': s.id === section.id ? 'page' : false,
        },
        s.title,
      ),
    ),
  );
  const body = h('section', { class: 'section', 'aria-labelledby': 'section-title' });
  const heading = h('small');
  const showStatus = (s) =>
    heading.replaceChildren(`v${s.release}`, ' ', badge(s.converged ? 'converged' : 'converging'));
  showStatus(status);
  view.replaceChildren(
    h('h1', {}, app, ' ', heading),
    tabs,
    h('h2', { id: 'section-title' }, section.title),
    body,
  );
  const mounted = await section.mount(body, {
    app,
    status,
    query,
    hashFor: (q) => `#/apps/${encodeURIComponent(app)}/${section.id}?${new URLSearchParams(q)}`,
  });
  let pending = null;
  teardown.push(
    onLive((message) => {
      if (message.type === 'event' && message.event.app === app) {
        mounted?.onEvent?.(message.event);
        // The heading's release and convergence follow deploys and instance changes (one read per burst).
        pending ??= setTimeout(async () => {
          pending = null;
          const fresh = await api.get(`/v1/apps/${encodeURIComponent(app)}`).catch(() => null);
          if (fresh) showStatus(fresh);
        }, 300);
      }
      if (message.type === 'tick') mounted?.onTick?.();
    }),
    () => mounted?.dispose?.(),
    () => clearTimeout(pending),
  );
}

window.addEventListener('hashchange', () => route());

(async () => {
  try {
    if (await api.resume()) route();
    else showSignIn();
  } catch (error) {
    showSignIn(`The control plane did not answer: ${error.message}`);
  }
})();
