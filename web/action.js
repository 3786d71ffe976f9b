// An action from the dashboard: asked for confirmation, done through the API, then the events it produced shown.
import { api } from './api.js';
import { confirmAction, h, time } from './dom.js';

/** Runs `perform()` after confirmation; writes what happened (its events, or the error) into `out`. */
export async function runAction({ app, title, text, perform, out }) {
  if (!(await confirmAction(title, text))) return false;
  out.replaceChildren(h('p', {}, `${title}…`));
  try {
    const before = await api.lastEventId(app);
    const result = await perform();
    const events = await api.eventsAfter(app, before);
    out.replaceChildren(
      h('p', { class: 'ok' }, `${title}: done${result?.description ? ` (${result.description})` : ''}.`),
      events.length === 0
        ? h('p', {}, 'No event yet.')
        : h(
            'ul',
            { class: 'produced', 'aria-label': 'Events it produced' },
            events.map((e) => h('li', {}, h('code', {}, e.kind), ` ${time(e.at)} ${e.message}`)),
          ),
    );
    return result ?? true;
  } catch (error) {
    out.replaceChildren(h('p', { class: 'error', role: 'alert' }, `${title} failed: ${error.message}`));
    return false;
  }
}
