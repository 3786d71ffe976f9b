// Pipeline runs: status, jobs and their output (followed live while the run goes on); promote a waiting run.
import { runAction } from '../action.js';
import { api } from '../api.js';
import { ago, badge, duration, h, table } from '../dom.js';

export default {
  id: 'pipeline',
  title: 'Pipeline',
  async mount(el, { app, query, hashFor }) {
    const path = `/v1/apps/${encodeURIComponent(app)}/pipeline/runs`;
    const out = h('div', { class: 'result', role: 'status', 'aria-live': 'polite' });
    const detail = h('div', { class: 'run' });
    const list = h('div');
    el.replaceChildren(list, out, detail);
    const stop = new AbortController();

    const renderList = async () => {
      const runs = await api.get(path);
      list.replaceChildren(
        runs.length === 0
          ? h('p', {}, 'No pipeline run: git push or berth pipeline run starts one.')
          : table(
              'Runs, newest first',
              ['Run', 'Status', 'Source', 'Revision', 'Release', 'Started', 'Took'],
              runs
                .slice()
                .reverse()
                .map((r) => [
                  h('a', { href: hashFor({ run: r.number }) }, `#${r.number}`),
                  badge(r.status),
                  `${r.source}${r.ref ? ` ${r.ref}` : ''}`,
                  h('code', {}, r.revision.slice(0, 12)),
                  r.release ? `v${r.release}` : '-',
                  ago(r.createdAt),
                  r.startedAt ? duration((r.endedAt ?? Date.now()) - r.startedAt) : '-',
                ]),
            ),
      );
      return runs;
    };

    const showRun = async (number) => {
      const run = await api.get(`${path}/${number}`);
      const outputs = new Map();
      const jobs = run.jobs.map((job) => {
        const pre = h('pre', { class: 'output' }, job.output ?? '');
        outputs.set(job.index, pre);
        return h(
          'details',
          { open: job.status === 'running' || job.status === 'failed' },
          h(
            'summary',
            {},
            `${job.stage}: ${job.command} `,
            badge(job.status),
            job.reason ? ` ${job.reason}` : '',
          ),
          pre,
        );
      });
      const promote =
        run.status === 'waiting'
          ? h(
              'button',
              { type: 'button', class: 'primary', onclick: () => doPromote(run.number) },
              `Promote run #${run.number}`,
            )
          : null;
      detail.replaceChildren(
        h('h3', {}, `Run #${run.number} `, badge(run.status)),
        run.reason ? h('p', {}, run.reason) : null,
        promote,
        ...jobs,
      );
      if (run.status === 'running' || run.status === 'queued') {
        // Follow from the start: replace what was shown with the streamed output.
        for (const pre of outputs.values()) pre.textContent = '';
        void api
          .stream(`${path}/${number}/stream`, stop.signal, (event) => {
            if (event.type === 'output') outputs.get(event.index)?.append(event.text);
          })
          .then(
            () => showRun(number),
            () => undefined,
          );
      }
    };

    const doPromote = async (number) => {
      await runAction({
        app,
        out,
        title: `Promote run #${number}`,
        text: `Deploy the release that run #${number} of ${app} built?`,
        perform: () => api.post(`${path}/${number}/promote`),
      });
      await renderList();
      await showRun(number);
    };

    const runs = await renderList();
    const selected = Number(query.get('run')) || runs.at(-1)?.number;
    if (selected) await showRun(selected);
    return {
      onEvent: (e) => {
        if (e.kind.startsWith('pipeline.')) void renderList().catch(() => undefined);
      },
      dispose: () => stop.abort(),
    };
  },
};
