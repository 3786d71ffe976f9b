// Differential conformance of the proxy's HTTP/1.1 engine: a table of request and response edge cases, each run through
// the real proxy process and judged by two independent strict parsers (llhttp and Python's h11).
import { after, before, describe, it } from 'node:test';
import {
  CraftedBackend,
  type FramedMessage,
  findPythonWithH11,
  H11,
  H11_MISSING,
  headerValues,
  Oracle,
  RecordingBackend,
  type RequestCase,
  type RequestOutcome,
  type ResponseCase,
} from './http-conformance-harness.js';
import { type ProxyProcess, removeDir, startProxy } from './proxy-harness.js';

const python = findPythonWithH11();
const b = (s: string) => Buffer.from(s, 'latin1');
const H = 'Host: p.localhost\r\n';
const get = (headers = '', target = '/') => `GET ${target} HTTP/1.1\r\n${H}${headers}\r\n`;
const post = (headers: string, body: string, target = '/') =>
  `POST ${target} HTTP/1.1\r\n${H}${headers}\r\n${body}`;
const chunked = (body: string, target = '/') => post('Transfer-Encoding: chunked\r\n', body, target);
const hex = (n: number) => `0x${n.toString(16).padStart(2, '0')}`;

/** The first request that reached the backend. */
function up(o: RequestOutcome, i = 0): FramedMessage | undefined {
  return o.forwarded[i]?.framing.messages[0];
}

function checkHeader(name: string, want: (values: string[]) => boolean, what: string) {
  return (o: RequestOutcome): string | undefined => {
    for (const f of o.forwarded) {
      const values = headerValues(f.framing.messages[0], name);
      if (!want(values)) return `forwarded ${name}: ${JSON.stringify(values)}; ${what}`;
    }
    return undefined;
  };
}
const absent = (name: string) => checkHeader(name, (v) => v.length === 0, 'must not be forwarded');
const once = (name: string) => checkHeader(name, (v) => v.length === 1, 'must be forwarded exactly once');
const onlyOurs = (name: string, value: string) =>
  checkHeader(
    name,
    (v) => v.length === 1 && v[0] === value,
    `must be only the proxy's ${JSON.stringify(value)}`,
  );
const all =
  (...checks: ((o: RequestOutcome) => string | undefined)[]) =>
  (o: RequestOutcome) => {
    for (const check of checks) {
      const problem = check(o);
      if (problem !== undefined) return problem;
    }
    return undefined;
  };
const body = (want: string) => (o: RequestOutcome) => {
  const m = up(o);
  return m !== undefined && m.body.toString('latin1') !== want
    ? `forwarded body ${JSON.stringify(m.body.toString('latin1'))}, expected ${JSON.stringify(want)}`
    : undefined;
};
const upstreamCount = (n: number) => (o: RequestOutcome) =>
  o.forwarded.length !== n ? `${o.forwarded.length} requests reached the backend, expected ${n}` : undefined;
const target = (want: string) => (o: RequestOutcome) =>
  up(o)?.target !== want ? `forwarded target ${up(o)?.target}, expected ${want}` : undefined;
const noTrailers = (o: RequestOutcome) =>
  o.forwarded.some((f) => (f.framing.messages[0]?.trailers.length ?? 0) > 0)
    ? `trailer fields forwarded: ${JSON.stringify(up(o)?.trailers)}`
    : undefined;
const prompt = (ms: number) => (o: RequestOutcome) =>
  o.client.ms > ms ? `answered after ${Math.round(o.client.ms)} ms, expected within ${ms} ms` : undefined;

// CTL bytes other than HTAB (RFC 9110 §5.5: field values are VCHAR, obs-text, SP and HTAB).
const CTLS = [...Array.from({ length: 32 }, (_, i) => i).filter((i) => i !== 0x09), 0x7f];
// Bytes that are not tchar (RFC 9110 §5.6.2), for header names.
const NON_TOKEN = [
  0x00, 0x09, 0x0b, 0x0c, 0x20, 0x22, 0x28, 0x2c, 0x2f, 0x3b, 0x3d, 0x40, 0x5b, 0x7b, 0x7f, 0x80, 0xa0, 0xff,
];

const requestCases: RequestCase[] = [
  // ---- what was found on main (issue 11) -------------------------------------------------------
  {
    name: 'found 1: a bare CR at the start of a value smuggles a Content-Length (request smuggling)',
    bytes: b(
      `POST /a HTTP/1.1\r\n${H}X-A: \rContent-Length: 0\r\nContent-Length: 65\r\n\r\n` +
        'GET /smuggled HTTP/1.1\r\nHost: p.localhost\r\nX-Pad: 0123456789ab\r\n\r\n',
    ),
    expect: 'refuse',
    status: 400,
  },
  {
    name: 'found 1: a bare CR value injects X-Forwarded-For and ends the head early',
    bytes: b(`GET / HTTP/1.1\r\n${H}X-A: \rX-Forwarded-For: 6.6.6.6\r\rX-Forwarded-Proto: https\r\n\r\n`),
    expect: 'refuse',
    status: 400,
  },
  {
    name: 'found 1: Transfer-Encoding "chunked\\xa0" is not chunked',
    bytes: b(post('Transfer-Encoding: chunked\xa0\r\n', '5\r\nhello\r\n0\r\n\r\n')),
    expect: 'refuse',
    status: 400,
  },
  {
    name: 'found 1: Transfer-Encoding "\\x0bchunked" is not chunked',
    bytes: b(post('Transfer-Encoding: \x0bchunked\r\n', '5\r\nhello\r\n0\r\n\r\n')),
    expect: 'refuse',
    status: 400,
  },
  {
    name: 'found 1: Content-Length "5\\xa0" is not a length',
    bytes: b(post('Content-Length: 5\xa0\r\n', 'hello')),
    expect: 'refuse',
    status: 400,
  },
  {
    name: 'found 5: duplicate identical Content-Length is forwarded once',
    bytes: b(post('Content-Length: 5\r\nContent-Length: 5\r\n', 'hello')),
    expect: 'either',
    check: all(once('content-length'), body('hello')),
  },
  {
    name: 'found 5: trailers are not forwarded raw (a Content-Length trailer)',
    bytes: b(chunked('5\r\nhello\r\n0\r\nContent-Length: 500\r\n\r\n')),
    expect: 'either',
    check: all(noTrailers, body('hello')),
  },
  {
    name: 'found 5: a 20 KiB head is answered 431 by the proxy, not by the backend',
    bytes: b(get(`X-Big: ${'a'.repeat(20 * 1024)}\r\n`)),
    expect: 'refuse',
    status: 431,
  },
  {
    name: 'found 5: absolute-form request target is accepted (RFC 9112 §3.2.2)',
    bytes: b(`GET http://p.localhost/abs?q=1 HTTP/1.1\r\n${H}\r\n`),
    expect: 'forward',
    check: target('/abs?q=1'),
  },
  {
    name: 'found 5: a bare-LF request head is refused at once',
    bytes: b('GET / HTTP/1.1\nHost: p.localhost\n\n'),
    expect: 'refuse',
    status: 400,
    check: prompt(1000),
  },
  {
    name: 'found 5: "Connection: keep-alive, x-notupgrade" is not an upgrade',
    bytes: b(get('Connection: keep-alive, x-notupgrade\r\nUpgrade: websocket\r\n')),
    expect: 'forward',
    check: all(absent('upgrade'), (o) =>
      headerValues(up(o), 'connection').some((v) => /upgrade/i.test(v))
        ? 'forwarded as an upgrade'
        : undefined,
    ),
  },
  {
    name: 'found 5: underscore variants of forwarding headers do not reach the app',
    bytes: b(get('X_Forwarded_For: 6.6.6.6\r\nX_Forwarded_Proto: https\r\nX_Real_IP: 6.6.6.6\r\n')),
    expect: 'forward',
    check: all(absent('x_forwarded_for'), absent('x_forwarded_proto'), absent('x_real_ip')),
  },
  {
    name: 'found 5: Host "café.test" gets an error page whose length is right (the next response is intact)',
    bytes: b(`GET / HTTP/1.1\r\nHost: caf\xe9.test\r\n\r\n${get('', '/after')}`),
    expect: 'refuse',
  },
  {
    name: 'found 5: Host "evil.com#" is refused',
    bytes: b('GET / HTTP/1.1\r\nHost: evil.com#\r\n\r\n'),
    expect: 'refuse',
    status: 400,
  },

  // ---- forwarding headers: the proxy's own, unless the client is a trusted proxy ---------------
  {
    name: 'a client X-Forwarded-For is replaced by the client address',
    bytes: b(get('X-Forwarded-For: 6.6.6.6\r\n')),
    expect: 'forward',
    check: onlyOurs('x-forwarded-for', '127.0.0.1'),
  },
  {
    name: 'a client X-Forwarded-Proto is replaced',
    bytes: b(get('X-Forwarded-Proto: https\r\n')),
    expect: 'forward',
    check: onlyOurs('x-forwarded-proto', 'http'),
  },
  {
    name: 'a client X-Forwarded-Host is replaced',
    bytes: b(get('X-Forwarded-Host: evil.example\r\n')),
    expect: 'forward',
    check: onlyOurs('x-forwarded-host', 'p.localhost'),
  },
  {
    name: 'a client Forwarded header is dropped',
    bytes: b(get('Forwarded: for=6.6.6.6;proto=https\r\n')),
    expect: 'forward',
    check: absent('forwarded'),
  },
  {
    name: 'a client X-Real-IP is dropped',
    bytes: b(get('X-Real-IP: 6.6.6.6\r\n')),
    expect: 'forward',
    check: absent('x-real-ip'),
  },
  {
    name: 'a client X-Forwarded-Prefix is dropped',
    bytes: b(get('X-Forwarded-Prefix: /evil\r\n')),
    expect: 'forward',
    check: absent('x-forwarded-prefix'),
  },
  {
    name: 'several client X-Forwarded-For lines become one',
    bytes: b(get('X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n')),
    expect: 'forward',
    check: onlyOurs('x-forwarded-for', '127.0.0.1'),
  },
  {
    name: 'a valid client X-Request-Id is kept, once',
    bytes: b(get('X-Request-Id: client-id-1\r\n')),
    expect: 'forward',
    check: onlyOurs('x-request-id', 'client-id-1'),
  },
  {
    name: 'an underscore X_Request_Id does not reach the app',
    bytes: b(get('X_Request_Id: spoofed\r\n')),
    expect: 'forward',
    check: all(absent('x_request_id'), once('x-request-id')),
  },

  // ---- hop-by-hop headers ------------------------------------------------------------------------
  {
    name: 'headers named in Connection are not forwarded',
    bytes: b(get('Connection: X-Secret\r\nX-Secret: 1\r\n')),
    expect: 'forward',
    check: all(absent('x-secret'), absent('connection')),
  },
  {
    name: 'Keep-Alive is not forwarded',
    bytes: b(get('Keep-Alive: 300\r\n')),
    expect: 'forward',
    check: absent('keep-alive'),
  },
  { name: 'TE is not forwarded', bytes: b(get('TE: trailers\r\n')), expect: 'forward', check: absent('te') },
  {
    name: 'Proxy-Connection is not forwarded',
    bytes: b(get('Proxy-Connection: keep-alive\r\n')),
    expect: 'forward',
    check: absent('proxy-connection'),
  },
  {
    name: 'Upgrade without a Connection upgrade option is not an upgrade',
    bytes: b(get('Upgrade: websocket\r\n')),
    expect: 'forward',
    check: absent('upgrade'),
  },
  {
    name: 'Connection upgrade without an Upgrade header is not an upgrade',
    bytes: b(get('Connection: upgrade\r\n')),
    expect: 'forward',
    check: absent('upgrade'),
  },
  {
    name: 'a WebSocket upgrade request is forwarded as one (the backend declines it)',
    bytes: b(
      get(
        'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n',
      ),
    ),
    expect: 'forward',
    check: once('upgrade'),
  },

  // ---- Content-Length ---------------------------------------------------------------------------
  {
    name: 'Content-Length body',
    bytes: b(post('Content-Length: 5\r\n', 'hello')),
    expect: 'forward',
    check: body('hello'),
  },
  {
    name: 'Content-Length 0',
    bytes: b(post('Content-Length: 0\r\n', '')),
    expect: 'forward',
    check: body(''),
  },
  {
    name: 'Content-Length with spaces and tabs around it',
    bytes: b(post('Content-Length: \t 5 \t\r\n', 'hello')),
    expect: 'forward',
    check: body('hello'),
  },
  {
    name: 'Content-Length with leading zeros',
    bytes: b(post('Content-Length: 005\r\n', 'hello')),
    expect: 'either',
    check: body('hello'),
  },
  {
    name: 'Content-Length on a GET',
    bytes: b(`GET / HTTP/1.1\r\n${H}Content-Length: 3\r\n\r\nabc`),
    expect: 'forward',
    check: body('abc'),
  },
  ...[
    '+5',
    '-5',
    '5.0',
    '0x5',
    '5 5',
    '5,5',
    '5, 5',
    '',
    'five',
    '99999999999999999999',
    '\x0c5',
    '5\x0b',
    '\xa05',
  ].map(
    (value): RequestCase => ({
      name: `Content-Length ${JSON.stringify(value)} is refused`,
      bytes: b(post(`Content-Length: ${value}\r\n`, 'hello')),
      expect: 'refuse',
      status: 400,
    }),
  ),
  {
    name: 'two different Content-Length values are refused',
    bytes: b(post('Content-Length: 5\r\nContent-Length: 6\r\n', 'hello!')),
    expect: 'refuse',
    status: 400,
  },
  {
    name: 'Content-Length with a space before the colon is refused',
    bytes: b(post('Content-Length : 5\r\n', 'hello')),
    expect: 'refuse',
    status: 400,
  },
  {
    name: 'Content_Length is not a framing header and is not forwarded',
    bytes: b(post('Content_Length: 5\r\n', '')),
    expect: 'forward',
    check: all(absent('content_length'), body('')),
  },
  {
    name: 'a body holding a whole request stays a body',
    bytes: b(post('Content-Length: 40\r\n', 'GET /smuggled HTTP/1.1\r\nHost: p.loca\r\n\r\n')),
    expect: 'forward',
    check: all(upstreamCount(1), body('GET /smuggled HTTP/1.1\r\nHost: p.loca\r\n\r\n')),
  },
  {
    name: 'a body shorter than Content-Length is waited for, not forwarded as more',
    bytes: b(post('Content-Length: 10\r\n', 'hello')),
    expect: 'either',
  },

  // ---- Transfer-Encoding ------------------------------------------------------------------------
  {
    name: 'chunked body',
    bytes: b(chunked('5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n')),
    expect: 'forward',
    check: body('hello world'),
  },
  {
    name: 'Transfer-Encoding with spaces and tabs around chunked',
    bytes: b(post('Transfer-Encoding: \t chunked \t\r\n', '5\r\nhello\r\n0\r\n\r\n')),
    expect: 'forward',
    check: body('hello'),
  },
  {
    name: 'Transfer-Encoding Chunked (case)',
    bytes: b(post('Transfer-Encoding: Chunked\r\n', '5\r\nhello\r\n0\r\n\r\n')),
    expect: 'forward',
    check: body('hello'),
  },
  {
    name: 'Transfer-Encoding CHUNKED (case)',
    bytes: b(post('Transfer-Encoding: CHUNKED\r\n', '5\r\nhello\r\n0\r\n\r\n')),
    expect: 'forward',
    check: body('hello'),
  },
  ...[
    'chunked, chunked',
    'gzip, chunked',
    'chunked, gzip',
    'identity',
    'chunked;q=1',
    '"chunked"',
    'xchunked',
    'chunked\x0c',
    '',
    'chunked\x00',
    'chunk',
  ].map(
    (value): RequestCase => ({
      name: `Transfer-Encoding ${JSON.stringify(value)} is refused`,
      bytes: b(post(`Transfer-Encoding: ${value}\r\n`, '5\r\nhello\r\n0\r\n\r\n')),
      expect: 'refuse',
    }),
  ),
  {
    name: 'two Transfer-Encoding: chunked lines are refused',
    bytes: b(post('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', '5\r\nhello\r\n0\r\n\r\n')),
    expect: 'refuse',
  },
  {
    name: 'Transfer-Encoding with a space before the colon is refused',
    bytes: b(post('Transfer-Encoding : chunked\r\n', '5\r\nhello\r\n0\r\n\r\n')),
    expect: 'refuse',
    status: 400,
  },
  {
    name: 'Transfer-Encoding and Content-Length together are refused',
    bytes: b(post('Transfer-Encoding: chunked\r\nContent-Length: 5\r\n', '5\r\nhello\r\n0\r\n\r\n')),
    expect: 'refuse',
    status: 400,
  },
  {
    name: 'Content-Length and Transfer-Encoding together are refused',
    bytes: b(post('Content-Length: 5\r\nTransfer-Encoding: chunked\r\n', '5\r\nhello\r\n0\r\n\r\n')),
    expect: 'refuse',
    status: 400,
  },
  {
    name: 'chunked in HTTP/1.0 is refused',
    bytes: b(`POST / HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`),
    expect: 'refuse',
  },
  {
    name: 'Transfer_Encoding is not a framing header and is not forwarded',
    bytes: b(post('Transfer_Encoding: chunked\r\nContent-Length: 3\r\n', 'abc')),
    expect: 'forward',
    check: all(absent('transfer_encoding'), body('abc')),
  },

  // ---- chunk sizes, extensions and trailers ------------------------------------------------------
  {
    name: 'chunk extension name=value',
    bytes: b(chunked('5;ext=1\r\nhello\r\n0\r\n\r\n')),
    expect: 'either',
    check: body('hello'),
  },
  {
    name: 'chunk extension without value',
    bytes: b(chunked('5;ext\r\nhello\r\n0\r\n\r\n')),
    expect: 'either',
    check: body('hello'),
  },
  {
    name: 'chunk extension quoted value',
    bytes: b(chunked('5;a="b c"\r\nhello\r\n0\r\n\r\n')),
    expect: 'either',
    check: body('hello'),
  },
  {
    name: 'chunk extension on the last chunk',
    bytes: b(chunked('5\r\nhello\r\n0;end=1\r\n\r\n')),
    expect: 'either',
    check: body('hello'),
  },
  {
    name: 'chunk extension with a space before ";"',
    bytes: b(chunked('5 ;ext\r\nhello\r\n0\r\n\r\n')),
    expect: 'either',
  },
  { name: 'chunk size followed by a space', bytes: b(chunked('5 \r\nhello\r\n0\r\n\r\n')), expect: 'either' },
  { name: 'chunk size followed by a tab', bytes: b(chunked('5\t\r\nhello\r\n0\r\n\r\n')), expect: 'either' },
  {
    name: 'chunk extension with a NUL',
    bytes: b(chunked('5;a\x00\r\nhello\r\n0\r\n\r\n')),
    expect: 'refuse',
  },
  {
    name: 'chunk extension with a bare CR',
    bytes: b(chunked('5;a\rb\r\nhello\r\n0\r\n\r\n')),
    expect: 'refuse',
  },
  {
    name: 'chunk extension of 5000 bytes',
    bytes: b(chunked(`5;${'a'.repeat(5000)}\r\nhello\r\n0\r\n\r\n`)),
    expect: 'either',
  },
  {
    name: 'upper-case hex chunk size',
    bytes: b(chunked('A\r\n0123456789\r\n0\r\n\r\n')),
    expect: 'forward',
    check: body('0123456789'),
  },
  {
    name: 'chunk size with leading zeros',
    bytes: b(chunked('0005\r\nhello\r\n0\r\n\r\n')),
    expect: 'forward',
    check: body('hello'),
  },
  {
    name: 'chunk size with 20 leading zeros',
    bytes: b(chunked(`${'0'.repeat(20)}5\r\nhello\r\n0\r\n\r\n`)),
    expect: 'either',
  },
  ...['0x5', '-5', '+5', ' 5', '5\xa0', 'g', '', 'ffffffffffffffffff'].map(
    (size): RequestCase => ({
      name: `chunk size ${JSON.stringify(size)} is refused`,
      bytes: b(chunked(`${size}\r\nhello\r\n0\r\n\r\n`)),
      expect: 'refuse',
    }),
  ),
  {
    name: 'chunk size line ending in a bare LF',
    bytes: b(chunked('5\nhello\r\n0\r\n\r\n')),
    expect: 'refuse',
  },
  {
    name: 'chunk data longer than its size',
    bytes: b(chunked('5\r\nhelloX\r\n0\r\n\r\n')),
    expect: 'refuse',
  },
  { name: 'chunk data followed by a bare LF', bytes: b(chunked('5\r\nhello\n0\r\n\r\n')), expect: 'refuse' },
  {
    name: 'last chunk without the final CRLF, then a request',
    bytes: b(chunked(`5\r\nhello\r\n0\r\n${get()}`)),
    expect: 'either',
  },
  {
    name: 'a trailer field is not forwarded',
    bytes: b(chunked('5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n')),
    expect: 'either',
    check: all(noTrailers, body('hello')),
  },
  {
    name: 'a Transfer-Encoding trailer is not forwarded',
    bytes: b(chunked('5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n')),
    expect: 'either',
    check: noTrailers,
  },
  {
    name: 'a trailer with a bare CR is refused',
    bytes: b(chunked('5\r\nhello\r\n0\r\nX-T: \rx\r\n\r\n')),
    expect: 'refuse',
  },
  {
    name: 'a trailer with a bare LF is refused',
    bytes: b(chunked('5\r\nhello\r\n0\r\nX-T: 1\n\r\n')),
    expect: 'refuse',
  },
  {
    name: 'a folded trailer is refused',
    bytes: b(chunked('5\r\nhello\r\n0\r\nX-T: 1\r\n 2\r\n\r\n')),
    expect: 'refuse',
  },
  {
    name: 'a trailer without a colon is refused',
    bytes: b(chunked('5\r\nhello\r\n0\r\nX-T 1\r\n\r\n')),
    expect: 'refuse',
  },
  {
    name: 'a chunk holding a whole request stays chunk data',
    bytes: b(chunked('26\r\nGET /smuggled HTTP/1.1\r\nHost: p.lo\r\n\r\n\r\n0\r\n\r\n')),
    expect: 'forward',
    check: all(upstreamCount(1), body('GET /smuggled HTTP/1.1\r\nHost: p.lo\r\n\r\n')),
  },
  {
    name: 'a chunked GET',
    bytes: b(`GET / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`),
    expect: 'forward',
    check: body('abc'),
  },
  {
    name: 'many small chunks',
    bytes: b(chunked(`${'1\r\nx\r\n'.repeat(200)}0\r\n\r\n`)),
    expect: 'forward',
    check: body('x'.repeat(200)),
  },

  // ---- control bytes and obs-text in header values and names -------------------------------------
  ...CTLS.flatMap((c): RequestCase[] => [
    {
      name: `${hex(c)} at the start of a header value is refused`,
      bytes: b(get(`X-A: ${String.fromCharCode(c)}v\r\n`)),
      expect: 'refuse',
      status: 400,
    },
    {
      name: `${hex(c)} at the end of a header value is refused`,
      bytes: b(get(`X-A: v${String.fromCharCode(c)}\r\n`)),
      expect: 'refuse',
      status: 400,
    },
  ]),
  ...[0x00, 0x0b, 0x0d, 0x7f].map(
    (c): RequestCase => ({
      name: `${hex(c)} inside a header value is refused`,
      bytes: b(get(`X-A: a${String.fromCharCode(c)}b\r\n`)),
      expect: 'refuse',
      status: 400,
    }),
  ),
  ...NON_TOKEN.map(
    (c): RequestCase => ({
      name: `${hex(c)} in a header name is refused`,
      bytes: b(get(`X${String.fromCharCode(c)}A: v\r\n`)),
      expect: 'refuse',
      status: 400,
    }),
  ),
  ...[0x80, 0xa0, 0xe9, 0xff].map(
    (c): RequestCase => ({
      name: `obs-text ${hex(c)} inside a header value is forwarded intact`,
      bytes: b(get(`X-A: a${String.fromCharCode(c)}b\r\n`)),
      expect: 'either',
      check: checkHeader('x-a', (v) => v.length <= 1, 'one value'),
    }),
  ),
  {
    name: 'a tab inside a header value',
    bytes: b(get('X-A: a\tb\r\n')),
    expect: 'forward',
    check: onlyOurs('x-a', 'a\tb'),
  },
  { name: 'an empty header value', bytes: b(get('X-A:\r\n')), expect: 'forward', check: onlyOurs('x-a', '') },
  {
    name: 'a header value without a space after the colon',
    bytes: b(get('X-A:v\r\n')),
    expect: 'forward',
    check: onlyOurs('x-a', 'v'),
  },
  { name: 'a 2000-byte header name', bytes: b(get(`X-${'n'.repeat(2000)}: v\r\n`)), expect: 'forward' },
  {
    name: '300 small headers',
    bytes: b(get(Array.from({ length: 300 }, (_, i) => `X-H${i}: ${i}\r\n`).join(''))),
    expect: 'forward',
  },

  // ---- head structure ----------------------------------------------------------------------------
  { name: 'obs-fold is refused', bytes: b(get('X-A: a\r\n b\r\n')), expect: 'refuse', status: 400 },
  {
    name: 'obs-fold with a tab is refused',
    bytes: b(get('X-A: a\r\n\tb\r\n')),
    expect: 'refuse',
    status: 400,
  },
  {
    name: 'a first header line that starts with a space is refused',
    bytes: b(`GET / HTTP/1.1\r\n ${H}\r\n`),
    expect: 'refuse',
    status: 400,
  },
  {
    name: 'a bare LF between headers is refused',
    bytes: b(`GET / HTTP/1.1\r\n${H}X-A: 1\nX-B: 2\r\n\r\n`),
    expect: 'refuse',
    status: 400,
  },
  {
    name: 'a bare LF ending the head is refused',
    bytes: b(`GET / HTTP/1.1\r\n${H}\n`),
    expect: 'refuse',
    status: 400,
    check: prompt(1000),
  },
  {
    name: 'a bare CR ending a header line is refused',
    bytes: b(`GET / HTTP/1.1\r\n${H}X-A: 1\rX-B: 2\r\n\r\n`),
    expect: 'refuse',
    status: 400,
  },
  {
    name: 'a bare CR in the request line is refused',
    bytes: b(`GET /\r HTTP/1.1\r\n${H}\r\n`),
    expect: 'refuse',
    status: 400,
  },
  {
    name: 'a header line without a colon is refused',
    bytes: b(get('X-A value\r\n')),
    expect: 'refuse',
    status: 400,
  },
  { name: 'an empty header name is refused', bytes: b(get(': value\r\n')), expect: 'refuse', status: 400 },
  {
    name: 'a space before the colon is refused',
    bytes: b(`GET / HTTP/1.1\r\nHost : p.localhost\r\n\r\n`),
    expect: 'refuse',
    status: 400,
  },
  { name: 'a tab before the colon is refused', bytes: b(get('X-A\t: v\r\n')), expect: 'refuse', status: 400 },
  { name: 'empty lines before the request line are ignored', bytes: b(`\r\n\r\n${get()}`), expect: 'either' },
  { name: 'a space before the request line is refused', bytes: b(` ${get()}`), expect: 'refuse' },

  // ---- request line -------------------------------------------------------------------------------
  {
    name: 'absolute-form wins over the Host header',
    bytes: b('GET http://p.localhost/x HTTP/1.1\r\nHost: other.localhost\r\n\r\n'),
    expect: 'forward',
    check: all(target('/x'), onlyOurs('host', 'p.localhost')),
  },
  {
    name: 'absolute-form https with a port',
    bytes: b(`GET https://p.localhost:8443/y HTTP/1.1\r\n${H}\r\n`),
    expect: 'forward',
    check: target('/y'),
  },
  {
    name: 'absolute-form without a path',
    bytes: b(`GET http://p.localhost HTTP/1.1\r\n${H}\r\n`),
    expect: 'forward',
    check: target('/'),
  },
  {
    name: 'absolute-form with only a query',
    bytes: b(`GET http://p.localhost?a=1 HTTP/1.1\r\n${H}\r\n`),
    expect: 'forward',
    check: target('/?a=1'),
  },
  {
    name: 'absolute-form with user info is refused',
    bytes: b(`GET http://u@p.localhost/ HTTP/1.1\r\n${H}\r\n`),
    expect: 'refuse',
    status: 400,
  },
  {
    name: 'absolute-form with another scheme is refused',
    bytes: b(`GET ftp://p.localhost/ HTTP/1.1\r\n${H}\r\n`),
    expect: 'refuse',
    status: 400,
  },
  {
    name: 'absolute-form with an empty authority is refused',
    bytes: b(`GET http:///x HTTP/1.1\r\n${H}\r\n`),
    expect: 'refuse',
    status: 400,
  },
  {
    name: 'authority-form (CONNECT) is refused',
    bytes: b(`CONNECT p.localhost:443 HTTP/1.1\r\n${H}\r\n`),
    expect: 'refuse',
  },
  { name: 'asterisk-form OPTIONS', bytes: b(`OPTIONS * HTTP/1.1\r\n${H}\r\n`), expect: 'either' },
  {
    name: 'two spaces after the method are refused',
    bytes: b(`GET  / HTTP/1.1\r\n${H}\r\n`),
    expect: 'refuse',
    status: 400,
  },
  {
    name: 'a space after the version is refused',
    bytes: b(`GET / HTTP/1.1 \r\n${H}\r\n`),
    expect: 'refuse',
    status: 400,
  },
  { name: 'HTTP/1.2 is refused', bytes: b(`GET / HTTP/1.2\r\n${H}\r\n`), expect: 'refuse' },
  {
    name: 'HTTP/2.0 is refused with 505',
    bytes: b(`GET / HTTP/2.0\r\n${H}\r\n`),
    expect: 'refuse',
    status: 505,
  },
  {
    name: 'a lower-case version is refused',
    bytes: b(`GET / http/1.1\r\n${H}\r\n`),
    expect: 'refuse',
    status: 400,
  },
  { name: 'HTTP/1.10 is refused', bytes: b(`GET / HTTP/1.10\r\n${H}\r\n`), expect: 'refuse' },
  { name: 'an unknown method', bytes: b(`BREW / HTTP/1.1\r\n${H}\r\n`), expect: 'either' },
  { name: 'a lower-case method', bytes: b(`get / HTTP/1.1\r\n${H}\r\n`), expect: 'either' },
  {
    name: 'a method with a non-token byte is refused',
    bytes: b(`GE(T / HTTP/1.1\r\n${H}\r\n`),
    expect: 'refuse',
    status: 400,
  },
  ...['PATCH', 'DELETE', 'PUT', 'OPTIONS', 'PROPFIND'].map(
    (method): RequestCase => ({
      name: `${method} is forwarded`,
      bytes: b(`${method} / HTTP/1.1\r\n${H}Content-Length: 2\r\n\r\nhi`),
      expect: 'forward',
      check: body('hi'),
    }),
  ),
  { name: 'HEAD is forwarded', bytes: b(`HEAD / HTTP/1.1\r\n${H}\r\n`), expect: 'forward' },
  ...[0x00, 0x09, 0x7f, 0x80, 0xff, 0x22, 0x3c].map(
    (c): RequestCase => ({
      name: `${hex(c)} in the request target`,
      bytes: b(`GET /a${String.fromCharCode(c)}b HTTP/1.1\r\n${H}\r\n`),
      expect: c < 0x21 || c >= 0x7f ? 'refuse' : 'either',
    }),
  ),
  {
    name: 'a fragment in the request target',
    bytes: b(`GET /a#frag HTTP/1.1\r\n${H}\r\n`),
    expect: 'either',
  },
  {
    name: 'a 9000-byte request target is refused with 414',
    bytes: b(get('', `/${'a'.repeat(9000)}`)),
    expect: 'refuse',
    status: 414,
  },

  // ---- Host ---------------------------------------------------------------------------------------
  { name: 'a missing Host is refused', bytes: b('GET / HTTP/1.1\r\n\r\n'), expect: 'refuse', status: 400 },
  {
    name: 'two Host headers are refused',
    bytes: b(`GET / HTTP/1.1\r\n${H}${H}\r\n`),
    expect: 'refuse',
    status: 400,
  },
  {
    name: 'an empty Host is refused',
    bytes: b('GET / HTTP/1.1\r\nHost: \r\n\r\n'),
    expect: 'refuse',
    status: 400,
  },
  {
    name: 'a Host with a space is refused',
    bytes: b('GET / HTTP/1.1\r\nHost: p .localhost\r\n\r\n'),
    expect: 'refuse',
    status: 400,
  },
  {
    name: 'a Host with user info is refused',
    bytes: b('GET / HTTP/1.1\r\nHost: u@p.localhost\r\n\r\n'),
    expect: 'refuse',
    status: 400,
  },
  {
    name: 'a Host with a path is refused',
    bytes: b('GET / HTTP/1.1\r\nHost: p.localhost/x\r\n\r\n'),
    expect: 'refuse',
    status: 400,
  },
  {
    name: 'a Host with a bad port is refused',
    bytes: b('GET / HTTP/1.1\r\nHost: p.localhost:8x\r\n\r\n'),
    expect: 'refuse',
    status: 400,
  },
  {
    name: 'an upper-case Host is routed',
    bytes: b('GET / HTTP/1.1\r\nHost: P.LOCALHOST\r\n\r\n'),
    expect: 'forward',
  },
  {
    name: 'a Host with a port is routed',
    bytes: b('GET / HTTP/1.1\r\nHost: p.localhost:8080\r\n\r\n'),
    expect: 'forward',
  },
  {
    name: 'an IPv6 Host gets a 404',
    bytes: b('GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n'),
    expect: 'refuse',
    status: 404,
  },

  // ---- pipelining, HTTP/1.0, Expect -----------------------------------------------------------------
  {
    name: 'three pipelined GETs',
    bytes: b(get('', '/1') + get('', '/2') + get('', '/3')),
    expect: 'forward',
    check: upstreamCount(3),
  },
  {
    name: 'a pipelined POST then GET',
    bytes: b(post('Content-Length: 5\r\n', 'hello', '/1') + get('', '/2')),
    expect: 'forward',
    check: all(upstreamCount(2), body('hello')),
  },
  {
    name: 'a pipelined chunked POST then GET',
    bytes: b(chunked('5\r\nhello\r\n0\r\n\r\n', '/1') + get('', '/2')),
    expect: 'forward',
    check: all(upstreamCount(2), body('hello')),
  },
  {
    name: 'a pipelined GET then a malformed request',
    bytes: b(`${get('', '/1')}GET / HTTP/1.1\r\n${H}X-A: \rB\r\n\r\n`),
    expect: 'refuse',
    check: upstreamCount(1),
  },
  { name: 'HTTP/1.0 GET', bytes: b(`GET / HTTP/1.0\r\n${H}\r\n`), expect: 'forward' },
  { name: 'HTTP/1.0 without Host', bytes: b('GET / HTTP/1.0\r\n\r\n'), expect: 'either' },
  {
    name: 'HTTP/1.0 keep-alive then another request',
    bytes: b(`GET /1 HTTP/1.0\r\n${H}Connection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n${H}\r\n`),
    expect: 'forward',
  },
  {
    name: 'HTTP/1.0 POST with a body',
    bytes: b(`POST / HTTP/1.0\r\n${H}Content-Length: 5\r\n\r\nhello`),
    expect: 'forward',
    check: body('hello'),
  },
  {
    name: 'Expect: 100-continue with a body',
    bytes: b(post('Expect: 100-continue\r\nContent-Length: 5\r\n', 'hello')),
    expect: 'forward',
    check: body('hello'),
  },
  {
    name: 'an unknown expectation',
    bytes: b(post('Expect: the-unexpected\r\nContent-Length: 5\r\n', 'hello')),
    expect: 'either',
  },
  { name: 'Connection: close', bytes: b(get('Connection: close\r\n')), expect: 'forward' },
];

const crlf = (s: string) => b(s);
const OK_HEAD = 'HTTP/1.1 200 OK\r\n';
const noLeak = (name: string) => (o: { responses: FramedMessage[] }) => {
  const first = o.responses.find((m) => m.informational !== true);
  return headerValues(first, name).length > 0 || (first?.trailers.some(([k]) => k === name) ?? false)
    ? `${name} reached the client`
    : undefined;
};

const responseCases: ResponseCase[] = [
  // ---- what was found on main -------------------------------------------------------------------
  {
    name: 'found 5: "Transfer-Encoding : chunked" (space before the colon) is not passed to the client',
    response: crlf(`${OK_HEAD}Transfer-Encoding : chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`),
    expect: 'refuse',
  },
  {
    name: 'found 5: a 1xx response is not forwarded to an HTTP/1.0 client',
    response: crlf(`HTTP/1.1 100 Continue\r\n\r\n${OK_HEAD}Content-Length: 2\r\n\r\nhi`),
    version: '1.0',
    expect: 'forward',
    body: 'hi',
    check: (o) =>
      o.responses.some((m) => m.informational === true) ? 'a 1xx reached the HTTP/1.0 client' : undefined,
  },
  {
    name: 'found 5: a chunked response trailer with Content-Length is not forwarded raw',
    response: crlf(
      `${OK_HEAD}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nContent-Length: 99\r\n\r\n`,
    ),
    expect: 'either',
    body: 'hello',
    check: noLeak('content-length'),
  },

  // ---- framing --------------------------------------------------------------------------------------
  {
    name: 'Content-Length response',
    response: crlf(`${OK_HEAD}Content-Length: 5\r\n\r\nhello`),
    expect: 'forward',
    body: 'hello',
  },
  {
    name: 'chunked response',
    response: crlf(`${OK_HEAD}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`),
    expect: 'forward',
    body: 'hello',
  },
  {
    name: 'chunked response with extensions',
    response: crlf(`${OK_HEAD}Transfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\n\r\n`),
    expect: 'either',
    body: 'hello',
  },
  {
    name: 'chunked response with a trailer',
    response: crlf(`${OK_HEAD}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n`),
    expect: 'either',
    body: 'hello',
  },
  {
    name: 'Content-Length and chunked together are refused',
    response: crlf(
      `${OK_HEAD}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    ),
    expect: 'refuse',
  },
  {
    name: 'duplicate identical Content-Length is sent once',
    response: crlf(`${OK_HEAD}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello`),
    expect: 'either',
    body: 'hello',
    check: (o) =>
      headerValues(o.responses[0], 'content-length').length > 1 ? 'content-length twice' : undefined,
  },
  {
    name: 'different Content-Length values are refused',
    response: crlf(`${OK_HEAD}Content-Length: 5\r\nContent-Length: 4\r\n\r\nhello`),
    expect: 'refuse',
  },
  ...['5\xa0', '+5', '5 5', '', '0x5', '-1'].map(
    (value): ResponseCase => ({
      name: `response Content-Length ${JSON.stringify(value)} is refused`,
      response: crlf(`${OK_HEAD}Content-Length: ${value}\r\n\r\nhello`),
      expect: 'refuse',
    }),
  ),
  ...['chunked\xa0', 'gzip', 'gzip, chunked', 'chunked, chunked', '\x0bchunked'].map(
    (value): ResponseCase => ({
      name: `response Transfer-Encoding ${JSON.stringify(value)} is refused`,
      response: crlf(`${OK_HEAD}Transfer-Encoding: ${value}\r\n\r\n5\r\nhello\r\n0\r\n\r\n`),
      expect: 'refuse',
    }),
  ),
  {
    name: 'a bad chunk size in a response',
    response: crlf(`${OK_HEAD}Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n`),
    expect: 'refuse',
  },
  {
    name: 'response chunk data longer than its size',
    response: crlf(`${OK_HEAD}Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n`),
    expect: 'refuse',
  },
  {
    name: 'a close-delimited response',
    response: crlf(`${OK_HEAD}Content-Type: text/plain\r\n\r\nuntil close`),
    close: true,
    expect: 'forward',
    body: 'until close',
  },
  {
    name: 'an HTTP/1.0 response with Content-Length',
    response: crlf('HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi'),
    expect: 'forward',
    body: 'hi',
  },
  {
    name: 'an HTTP/1.0 close-delimited response',
    response: crlf('HTTP/1.0 200 OK\r\n\r\nold'),
    close: true,
    expect: 'forward',
    body: 'old',
  },
  {
    name: 'a response with more bytes than its Content-Length',
    response: crlf(`${OK_HEAD}Content-Length: 2\r\n\r\nhiEXTRA`),
    expect: 'forward',
    body: 'hi',
  },
  {
    name: 'a chunked response to an HTTP/1.0 client',
    response: crlf(`${OK_HEAD}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`),
    version: '1.0',
    expect: 'either',
    check: (o) =>
      headerValues(o.responses[0], 'transfer-encoding').length > 0
        ? 'chunked sent to an HTTP/1.0 client'
        : undefined,
  },

  // ---- 1xx, HEAD, 204, 304 ---------------------------------------------------------------------------
  {
    name: '100 Continue then 200',
    response: crlf(`HTTP/1.1 100 Continue\r\n\r\n${OK_HEAD}Content-Length: 2\r\n\r\nhi`),
    expect: 'forward',
    body: 'hi',
  },
  {
    name: '103 Early Hints then 200',
    response: crlf(
      `HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n${OK_HEAD}Content-Length: 2\r\n\r\nhi`,
    ),
    expect: 'forward',
    body: 'hi',
  },
  {
    name: 'two 1xx then 200',
    response: crlf(
      `HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n${OK_HEAD}Content-Length: 2\r\n\r\nhi`,
    ),
    expect: 'forward',
    body: 'hi',
  },
  {
    name: '101 without an upgrade request is refused',
    response: crlf('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n'),
    expect: 'refuse',
  },
  {
    name: 'HEAD response with Content-Length and no body',
    response: crlf(`${OK_HEAD}Content-Length: 5\r\n\r\n`),
    method: 'HEAD',
    expect: 'forward',
    body: '',
  },
  {
    name: 'HEAD response followed by body bytes it should not have',
    response: crlf(`${OK_HEAD}Content-Length: 5\r\n\r\nhello`),
    method: 'HEAD',
    expect: 'either',
    body: '',
  },
  {
    name: 'HEAD response that says chunked',
    response: crlf(`${OK_HEAD}Transfer-Encoding: chunked\r\n\r\n`),
    method: 'HEAD',
    expect: 'either',
    body: '',
  },
  {
    name: '204 with Content-Length and a body',
    response: crlf('HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello'),
    expect: 'either',
    body: '',
  },
  {
    name: '204 with chunked and a body',
    response: crlf('HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'),
    expect: 'either',
  },
  {
    name: '304 with a body',
    response: crlf('HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nhello'),
    expect: 'either',
    body: '',
  },
  {
    name: '204 without a body',
    response: crlf('HTTP/1.1 204 No Content\r\n\r\n'),
    expect: 'forward',
    body: '',
  },

  // ---- response heads ------------------------------------------------------------------------------
  {
    name: 'bare LF line endings in a response head',
    response: crlf('HTTP/1.1 200 OK\nContent-Length: 2\n\nhi'),
    expect: 'refuse',
  },
  {
    name: 'obs-fold in a response head',
    response: crlf(`${OK_HEAD}X-A: a\r\n b\r\nContent-Length: 2\r\n\r\nhi`),
    expect: 'refuse',
  },
  {
    name: 'a CTL in a response header value',
    response: crlf(`${OK_HEAD}X-A: a\x01b\r\nContent-Length: 2\r\n\r\nhi`),
    expect: 'refuse',
  },
  {
    name: 'a bare CR in a response header value',
    response: crlf(`${OK_HEAD}X-A: \rContent-Length: 9\r\nContent-Length: 2\r\n\r\nhi`),
    expect: 'refuse',
  },
  {
    name: 'a space in a response header name',
    response: crlf(`${OK_HEAD}X A: b\r\nContent-Length: 2\r\n\r\nhi`),
    expect: 'refuse',
  },
  {
    name: 'a status line without a reason',
    response: crlf('HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nhi'),
    expect: 'either',
    body: 'hi',
  },
  {
    name: 'a four-digit status is refused',
    response: crlf('HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nhi'),
    expect: 'refuse',
  },
  {
    name: 'HTTP/1.2 response',
    response: crlf('HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\nhi'),
    expect: 'either',
  },
  {
    name: 'a lower-case response version is refused',
    response: crlf('http/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi'),
    expect: 'refuse',
  },
  {
    name: 'a NUL in the reason phrase is refused',
    response: crlf('HTTP/1.1 200 O\x00K\r\nContent-Length: 2\r\n\r\nhi'),
    expect: 'refuse',
  },
  {
    name: 'a 20 KiB response head is refused',
    response: crlf(`${OK_HEAD}X-Big: ${'a'.repeat(20 * 1024)}\r\nContent-Length: 2\r\n\r\nhi`),
    expect: 'refuse',
  },
  {
    name: 'obs-text in a response header value',
    response: crlf(`${OK_HEAD}X-A: caf\xe9\r\nContent-Length: 2\r\n\r\nhi`),
    expect: 'either',
    body: 'hi',
  },
  {
    name: 'Connection: close from the backend',
    response: crlf(`${OK_HEAD}Connection: close\r\nContent-Length: 2\r\n\r\nhi`),
    close: true,
    expect: 'forward',
    body: 'hi',
  },
  {
    name: 'a response Keep-Alive header is not forwarded',
    response: crlf(`${OK_HEAD}Keep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nhi`),
    expect: 'forward',
    body: 'hi',
    check: noLeak('keep-alive'),
  },
  {
    name: 'response headers named in Connection are not forwarded',
    response: crlf(`${OK_HEAD}Connection: X-Internal\r\nX-Internal: secret\r\nContent-Length: 2\r\n\r\nhi`),
    expect: 'forward',
    body: 'hi',
    check: noLeak('x-internal'),
  },
];

describe('HTTP/1.1 conformance: the proxy against llhttp and h11', {
  skip: python === undefined ? H11_MISSING : false,
}, () => {
  let proxy: ProxyProcess;
  let recording: RecordingBackend;
  let crafted: CraftedBackend;
  let h11: H11;
  let oracle: Oracle;

  before(async () => {
    recording = new RecordingBackend();
    crafted = new CraftedBackend();
    await recording.listen();
    await crafted.listen();
    h11 = new H11(python!);
    proxy = await startProxy();
    const health = { path: '/__health', intervalMs: 60_000, timeoutMs: 1000 };
    await proxy.admin.putRouteTable({
      routes: [
        { host: 'p.localhost', backends: [{ targetGroup: 'oracle' }] },
        { host: 'r.localhost', backends: [{ targetGroup: 'crafted' }] },
      ],
      targetGroups: [
        {
          name: 'oracle',
          health,
          responseTimeoutMs: 5000,
          targets: [{ id: 'rec', host: '127.0.0.1', port: recording.port }],
        },
        {
          name: 'crafted',
          health,
          responseTimeoutMs: 5000,
          targets: [{ id: 'crafted', host: '127.0.0.1', port: crafted.port }],
        },
      ],
    });
    oracle = new Oracle(proxy.http, recording, crafted, h11);
  });

  after(async () => {
    await proxy?.stop();
    await recording?.close();
    await crafted?.close();
    await h11?.close();
    if (proxy !== undefined) removeDir(proxy.dataDir);
  });

  describe(`${requestCases.length} request cases`, () => {
    for (const c of requestCases) {
      it(c.name, async () => {
        const problem = await oracle.request(c);
        if (problem !== undefined) throw new Error(problem);
      });
    }
  });

  describe(`${responseCases.length} response cases`, () => {
    for (const c of responseCases) {
      it(c.name, async () => {
        const problem = await oracle.response(c);
        if (problem !== undefined) throw new Error(problem);
      });
    }
  });
});
