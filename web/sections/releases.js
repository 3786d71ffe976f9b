// Releases with their diff against the one before and how their deployment ended; rollback; live deploy progress
// (the CLI's progress lines, re-read at each event of the app).
import { runAction } from '../action.js';
import { api } from '../api.js';
import { badge, h, time } from '../dom.js';

/** The spec as `path → JSON text`, for a line-per-field diff. */
function flatten(value, prefix = '', out = new Map()) {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [key, child] of Object.entries(value)) flatten(child, prefix ? `${prefix}.${key}` : key, out);
  } else {
    out.set(prefix, JSON.stringify(value));
  }
  return out;
}

/** `+ path: v`, `- path: v`, `~ path: a → b` between two specs (the first release lists nothing). */
export function specDiff(before, after) {
  if (!before) return [];
  const a = flatten(before);
  const b = flatten(after);
  const lines = [];
  for (const [path, value] of b) {
    if (!a.has(path)) lines.push(`+ ${path}: ${value}`);
    else if (a.get(path) !== value) lines.push(`~ ${path}: ${a.get(path)} → ${value}`);
  }
  for (const [path, value] of a) if (!b.has(path)) lines.push(`- ${path}: ${value}`);
  return lines;
}

/** The CLI's progress line of one service (src/cli/commands/deploy.ts `progressOf`). */
function progressOf(service, deployment) {
  const failures = deployment.services.find((d) => d.name === service.name)?.failures ?? 0;
  const parts = [`${service.healthy}/${service.desired} new healthy`];
  if (service.starting) parts.push(`${service.starting} starting`);
  if (service.unhealthy) parts.push(`${service.unhealthy} unhealthy`);
  if (service.outdated) parts.push(`${service.outdated} old`);
  if (service.draining) parts.push(`${service.draining} draining`);
  if (failures) parts.push(`${failures} failed`);
  return `${service.name}: ${parts.join(', ')}`;
}

export default {
  id: 'releases',
  title: 'Releases & deploys',
  async mount(el, { app }) {
    const path = `/v1/apps/${encodeURIComponent(app)}`;
    const out = h('div', { class: 'result', role: 'status', 'aria-live': 'polite' });
    const progress = h('pre', { class: 'progress', 'aria-live': 'polite', 'aria-label': 'Deploy progress' });
    const progressBox = h('div', { class: 'deploy', hidden: true }, h('h3', {}, 'Deploy progress'), progress);
    const list = h('div', { class: 'releases' });
    el.replaceChildren(progressBox, out, list);
    let following = null;
    let lastLine = '';

    const write = (line) => {
      progressBox.hidden = false;
      progress.append(`${line}\n`);
    };

    const follow = async () => {
      if (following === null) return;
      const { deployment, status } = await api.get(`/v1/deployments/${following}`);
      const involved = status.services.filter((s) => deployment.services.some((d) => d.name === s.name));
      const line = involved.map((s) => progressOf(s, deployment)).join('  ');
      if (line !== lastLine) write(`  ${line}`);
      lastLine = line;
      const settled =
        deployment.state !== 'in_progress' && (deployment.state !== 'rolled_back' || status.converged);
      if (settled) {
        following = null;
        write(`deployment ${deployment.id} ${deployment.state}`);
        await render();
      }
    };

    const render = async () => {
      const releases = await api.get(`${path}/releases`);
      const status = await api.get(path);
      const current = status.release;
      const running = releases.find((r) => r.deployment?.state === 'in_progress');
      if (running && following === null) {
        following = running.deployment.id;
        write(
          `following deployment ${following}: v${running.deployment.fromRelease ?? '-'} → v${running.version}`,
        );
      }
      list.replaceChildren(
        ...releases
          .slice()
          .reverse()
          .map((release) => {
            const before = releases.find((r) => r.version === release.version - 1);
            const diff = specDiff(before?.spec, release.spec);
            const d = release.deployment;
            return h(
              'article',
              {
                class: 'release',
                'data-version': release.version,
                'aria-label': `Release v${release.version}`,
              },
              h(
                'header',
                {},
                h('strong', {}, `v${release.version}`),
                release.version === current ? badge('current') : null,
                d ? badge(d.state) : h('span', { class: 'muted' }, 'no deployment'),
                h('span', { class: 'muted' }, time(release.createdAt)),
                release.version !== current
                  ? h(
                      'button',
                      { type: 'button', onclick: () => rollback(release.version) },
                      `Roll back to v${release.version}`,
                    )
                  : null,
              ),
              h('p', {}, release.description),
              release.artifactDigest
                ? h('p', { class: 'muted' }, h('code', {}, release.artifactDigest.slice(0, 19)))
                : null,
              d?.reason ? h('pre', { class: 'reason' }, d.reason) : null,
              diff.length > 0
                ? h(
                    'details',
                    {},
                    h(
                      'summary',
                      {},
                      `Diff from v${release.version - 1} (${diff.length} change${diff.length === 1 ? '' : 's'})`,
                    ),
                    h('pre', { class: 'diff' }, diff.join('\n')),
                  )
                : null,
            );
          }),
      );
    };

    const rollback = async (version) => {
      const result = await runAction({
        app,
        out,
        title: `Roll back ${app} to v${version}`,
        text: `Deploy v${version} of ${app} again as a new release, health-gated?`,
        perform: () => api.post(`${path}/rollback`, { version }),
      });
      if (result?.deployment) {
        following = result.deployment;
        lastLine = '';
        write(`${result.description}: deployment ${following}`);
        await follow();
      }
      await render();
    };

    await render();
    await follow();
    // One follow at a time; events that arrive meanwhile make it read once more.
    let running = false;
    let again = false;
    const kick = async () => {
      if (running) {
        again = true;
        return;
      }
      running = true;
      try {
        do {
          again = false;
          await follow();
        } while (again && following !== null);
      } finally {
        running = false;
      }
    };
    return {
      onEvent: (e) => {
        if (e.kind === 'deployment.started' && typeof e.data?.deployment === 'number') {
          following = e.data.deployment;
          lastLine = '';
        }
        if (e.kind.startsWith('deployment.') || e.kind === 'release.created') write(e.message);
        if (following !== null) void kick().catch(() => undefined);
      },
      onTick: () => {
        if (following !== null) void kick().catch(() => undefined);
      },
    };
  },
};
