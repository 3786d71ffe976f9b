// The one place where a failed exchange becomes a status code (408/499/502/503/504), and the pages the proxy sends.

/** Why the proxy could not deliver an upstream response. */
export type Failure =
  /** No target is registered (or every target is draining). */
  | 'no_target'
  /** TCP connect to the target failed (refused, unreachable, timed out). */
  | 'connect_failed'
  /** The upstream closed or reset the connection before sending a complete response head. */
  | 'reset_before_response'
  /** The upstream sent something that is not valid HTTP/1.1. */
  | 'bad_response'
  /**
   * The response head did not arrive within the response timeout after the request was sent, or the upstream
   * stopped sending (or reading) a body for longer than the body idle timeout.
   */
  | 'response_timeout'
  /** The client stopped sending its request body for longer than the body idle timeout. */
  | 'client_timeout'
  /** The client closed its connection (or stopped reading) before the response was complete. */
  | 'client_gone';

/** Maps a failure to the status the proxy sends (or records, for 499). */
export function classifyFailure(failure: Failure): 408 | 499 | 502 | 503 | 504 {
  switch (failure) {
    case 'client_timeout':
      return 408;
    case 'no_target':
      return 503;
    case 'connect_failed':
    case 'reset_before_response':
    case 'bad_response':
      return 502;
    case 'response_timeout':
      return 504;
    case 'client_gone':
      return 499;
  }
}

const REASONS: Record<number, string> = {
  301: 'Moved Permanently',
  308: 'Permanent Redirect',
  400: 'Bad Request',
  404: 'Not Found',
  408: 'Request Timeout',
  414: 'URI Too Long',
  431: 'Request Header Fields Too Large',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
};

const EXPLANATIONS: Record<number, string> = {
  404: 'No application is configured for this host.',
  408: 'The request body stopped arriving.',
  502: 'The application could not be reached or closed the connection.',
  503: 'The application has no running instances right now.',
  504: 'The application did not answer in time.',
};

/** Reason phrase for a status the proxy produces. */
export function reasonPhrase(status: number): string {
  return REASONS[status] ?? 'Error';
}

/**
 * A complete HTTP/1.1 response with a small HTML page naming the request id, as a latin1 string. The page is
 * ASCII (anything else is escaped), so its declared length is exactly what is written.
 */
export function errorResponse(status: number, requestId: string, close: boolean, detail?: string): string {
  const reason = reasonPhrase(status);
  const text = detail ?? EXPLANATIONS[status] ?? reason;
  const body =
    `<!doctype html><html><head><title>${status} ${reason}</title></head><body>` +
    `<h1>${status} ${reason}</h1><p>${escapeHtml(text)}</p><p>Request id: <code>${escapeHtml(requestId)}</code></p>` +
    `<hr><small>berth proxy</small></body></html>\n`;
  return (
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: ${body.length}\r\n` +
    `cache-control: no-store\r\nx-request-id: ${requestId}\r\n${close ? 'connection: close\r\n' : ''}\r\n${body}`
  );
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]|[^\x20-\x7e]/g, (c) =>
    c === '&'
      ? '&amp;'
      : c === '<'
        ? '&lt;'
        : c === '>'
          ? '&gt;'
          : c === '"'
            ? '&quot;'
            : `&#${c.charCodeAt(0)};`,
  );
}

/**
 * Why a connection to a target failed, in words an operator can act on: a refusal, or what TLS said about the
 * certificate (an external origin whose CA is not trusted, or whose certificate does not name its host).
 */
export function connectionFailureReason(error: NodeJS.ErrnoException | undefined): string {
  if (error === undefined) return 'connect failed';
  if (error.code === 'ECONNREFUSED') return 'connection refused';
  if (error.code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `TLS: ${error.message}`;
  if (error.code !== undefined && TLS_TRUST_CODES.has(error.code))
    return `TLS: certificate not trusted (${error.code}: ${error.message}); give the origin's CA as ca:`;
  if (error.code?.startsWith('ERR_SSL') || error.code?.startsWith('ERR_TLS')) return `TLS: ${error.message}`;
  return error.code ?? error.message;
}

/** OpenSSL's verification errors that mean "no trusted CA signed this chain". */
const TLS_TRUST_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
]);
