// A streaming request's stop signal: aborted when its client goes away or the server closes, whichever comes first.
import type { EventEmitter } from 'node:events';

export interface RequestStop {
  readonly signal: AbortSignal;
  /**
   * Forgets both sources: call it when the request ends. The server's closing signal lives as long as the server,
   * so a listener left on it per request would pile up for as long as the control plane runs.
   */
  release(): void;
}

export function requestStop(request: EventEmitter, closing: AbortSignal | undefined): RequestStop {
  const stop = new AbortController();
  const abort = (): void => stop.abort();
  request.once('close', abort);
  if (closing?.aborted) stop.abort();
  else closing?.addEventListener('abort', abort, { once: true });
  return {
    signal: stop.signal,
    release: () => {
      closing?.removeEventListener('abort', abort);
      request.off('close', abort);
    },
  };
}
