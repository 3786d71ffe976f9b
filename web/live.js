// The live feed: one EventSource per tab on /v1/live (events as they happen, a tick per metrics collection).
// EventSource reconnects by itself and resumes after the last event id; the header shows when it is down.

const listeners = new Set();
let source = null;

/** `fn({ type: 'event', event } | { type: 'tick' } | { type: 'expired' } | { type: 'closed' })` while the page lives. */
export function onLive(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function emit(message) {
  for (const fn of [...listeners]) {
    try {
      fn(message);
    } catch (error) {
      console.error(error);
    }
  }
}

function status(text, state) {
  const el = document.getElementById('live');
  el.textContent = text;
  el.dataset.state = state;
}

export function startLive() {
  if (source) return;
  source = new EventSource('/v1/live');
  status('connecting…', 'connecting');
  source.addEventListener('open', () => status('live', 'live'));
  source.addEventListener('error', () => {
    status('reconnecting… (showing the last data)', 'down');
    // EventSource retries by itself after a network error, but gives up on an answer that is not a stream
    // (401 after a control-plane restart): then the page checks its session and starts again or signs out.
    if (source.readyState === EventSource.CLOSED) {
      const closed = source;
      source = null;
      closed.close();
      setTimeout(() => emit({ type: 'closed' }), 2000);
    }
  });
  source.addEventListener('berth', (e) => emit({ type: 'event', event: JSON.parse(e.data) }));
  source.addEventListener('tick', () => emit({ type: 'tick' }));
  source.addEventListener('expired', () => {
    stopLive();
    emit({ type: 'expired' });
  });
}

export function stopLive() {
  source?.close();
  source = null;
  status('', 'off');
}
