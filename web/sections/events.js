// The app's events, newest first, new ones added as they happen.
import { api } from '../api.js';
import { h, time } from '../dom.js';

function row(e) {
  return h(
    'tr',
    { 'data-id': e.id },
    h('td', {}, time(e.at)),
    h('td', {}, h('code', {}, e.kind)),
    h('td', {}, e.actor),
    h('td', {}, e.message),
  );
}

export default {
  id: 'events',
  title: 'Events',
  async mount(el, { app }) {
    const events = await api.get(`/v1/events?app=${encodeURIComponent(app)}&limit=300`);
    const body = h('tbody', {}, events.slice().reverse().map(row));
    el.replaceChildren(
      h(
        'div',
        { class: 'scroll' },
        h(
          'table',
          {},
          h('caption', {}, 'Events, newest first'),
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ['Time', 'Kind', 'Actor', 'What'].map((t) => h('th', { scope: 'col' }, t)),
            ),
          ),
          body,
        ),
      ),
    );
    return {
      onEvent: (e) => {
        body.prepend(row(e));
        while (body.childElementCount > 1000) body.lastElementChild.remove();
      },
    };
  },
};
