// The live log tail: the app's instances' output and its events, filtered by service, instance and text.
import { api } from '../api.js';
import { h } from '../dom.js';

const KEEP = 2000;

export default {
  id: 'logs',
  title: 'Logs',
  async mount(el, { app, status, query, hashFor }) {
    const service = query.get('service') ?? '';
    const instance = query.get('instance') ?? '';
    const grep = query.get('grep') ?? '';
    const events = query.get('events') !== '0';
    const form = h(
      'form',
      { class: 'toolbar filters', 'aria-label': 'Log filters' },
      h(
        'label',
        {},
        'Service ',
        h(
          'select',
          { name: 'service' },
          h('option', { value: '' }, 'all'),
          status.services.map((s) => h('option', { value: s.name, selected: s.name === service }, s.name)),
        ),
      ),
      h('label', {}, 'Instance ', h('input', { name: 'instance', value: instance, size: 18 })),
      h('label', {}, 'Text ', h('input', { name: 'grep', value: grep, type: 'search', size: 18 })),
      h('label', {}, h('input', { name: 'events', type: 'checkbox', checked: events }), ' events'),
      h('button', { type: 'submit' }, 'Apply'),
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const data = new FormData(form);
      location.hash = hashFor({
        service: data.get('service'),
        instance: data.get('instance'),
        grep: data.get('grep'),
        events: data.get('events') ? '1' : '0',
      });
    });
    const state = h('p', { class: 'muted', role: 'status' }, 'connecting…');
    const lines = h('ol', { class: 'log', 'aria-label': 'Log lines', tabindex: 0 });
    el.replaceChildren(form, state, lines);

    const params = new URLSearchParams({ follow: '1', lines: '200', events: events ? '1' : '0' });
    if (service) params.set('service', service);
    if (instance) params.set('instance', instance);
    if (grep) params.set('grep', grep);
    const stop = new AbortController();
    const add = (line) => {
      const atBottom = lines.scrollTop + lines.clientHeight >= lines.scrollHeight - 4;
      const t = line.t ? new Date(line.t).toISOString().slice(11, 23) : '';
      lines.append(
        h(
          'li',
          { class: `src-${line.source}` },
          h('span', { class: 'muted' }, `${t} ${line.instance}[${line.source}] `),
          line.line,
        ),
      );
      while (lines.childElementCount > KEEP) lines.firstElementChild.remove();
      if (atBottom) lines.scrollTop = lines.scrollHeight;
    };
    // Reconnects after a drop, asking only for what came since the last line seen.
    let since = null;
    const run = async () => {
      while (!stop.signal.aborted) {
        try {
          if (since !== null) params.set('since', new Date(since + 1).toISOString());
          state.textContent = 'following';
          await api.stream(`/v1/apps/${encodeURIComponent(app)}/logs?${params}`, stop.signal, (line) => {
            if (line.t) since = line.t;
            add(line);
          });
        } catch (error) {
          if (stop.signal.aborted || error.status === 401) return;
          state.textContent = `disconnected (${error.message}); retrying…`;
        }
        await new Promise((r) => setTimeout(r, 2000));
      }
    };
    void run();
    return { dispose: () => stop.abort() };
  },
};
