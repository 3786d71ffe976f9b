// Small DOM and formatting helpers: elements built from data with textContent only (no HTML strings, no XSS).

/** `h('td', { class: 'num' }, 'text', child)`: an element; attributes starting with `on` are listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** A table from column headers and rows of cells; `caption` names it for screen readers. */
export function table(caption, headers, rows) {
  return h(
    'div',
    { class: 'scroll' },
    h(
      'table',
      {},
      h('caption', {}, caption),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          headers.map((t) => h('th', { scope: 'col' }, t)),
        ),
      ),
      h(
        'tbody',
        {},
        rows.map((cells) =>
          h(
            'tr',
            {},
            cells.map((c) => (c instanceof Node && c.tagName === 'TD' ? c : h('td', {}, c))),
          ),
        ),
      ),
    ),
  );
}

export function bytes(n) {
  if (n === null || n === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n < 100 && i > 0 ? n.toFixed(1) : Math.round(n)}${units[i]}`;
}

export function ms(n) {
  if (n === null || n === undefined) return '-';
  return n < 10 ? `${n.toFixed(1)}ms` : n < 1000 ? `${Math.round(n)}ms` : `${(n / 1000).toFixed(2)}s`;
}

export function duration(msSpan) {
  const s = Math.max(0, Math.floor(msSpan / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

export function time(at) {
  return at ? new Date(at).toISOString().replace('T', ' ').slice(0, 19) + 'Z' : '-';
}

export function ago(at) {
  return at ? `${duration(Date.now() - at)} ago` : '-';
}

/** A state as a badge whose class colours it (text always says it: colour is never the only signal). */
export function badge(state) {
  return h('span', { class: `badge s-${String(state).replace(/[^a-z_]/gi, '')}` }, state);
}

/** Asks before an action, in the page's own dialog (keyboard: Enter confirms, Escape cancels). */
export function confirmAction(title, text) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  dialog.returnValue = '';
  dialog.showModal();
  document.getElementById('confirm-ok').focus();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
  });
}
