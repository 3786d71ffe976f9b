// Seeded random mutations of valid requests through the real proxy, judged by the same differential oracle as the
// conformance table: the proxy refuses, or llhttp and h11 frame what it forwarded exactly as one request each.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  CraftedBackend,
  findPythonWithH11,
  H11,
  H11_MISSING,
  Oracle,
  RecordingBackend,
  type RequestCase,
} from './http-conformance-harness.js';
import { type ProxyProcess, removeDir, startProxy } from './proxy-harness.js';

const python = findPythonWithH11();
const SEED = Number(process.env.BERTH_MUTATION_SEED ?? 11);
/**
 * Mutations drawn (BERTH_MUTATION_COUNT: more for a deeper run). Each applies one to three edits; an edit's class is
 * its operation and operand: replacing a byte with each of the 23 listed bytes (control bytes, CR, LF, separators,
 * digits, letters, DEL, obs-text) or any byte, inserting each of the 25 snippets, deleting 1 to 4 bytes,
 * duplicating a line, changing case, putting each of the 11 numbers in place of one, and cutting into pieces: 67
 * classes on each of the 12 requests of the corpus, 804 in all, at random places. With seed 11, 12 000 draws (the
 * first 1 500 of each lane's stream: a prefix of the 20 000 this file drew before, so no case is new) reach every
 * class at least twice and each operation (with any operand) on each request at least 77 times; the run
 * asserts that floor, so a change of seed or count that leaves a class unreached fails rather than proving less.
 */
const COUNT = Number(process.env.BERTH_MUTATION_COUNT ?? 12_000);
const MIN_PER_CLASS = 2;
/** How long a client waits on a mutated request it is owed no answer to yet (an unfinished head waits this long). */
const DEADLINE_MS = 250;
const BATCH = 200;

/** mulberry32: a small seeded generator, so a failure can be replayed with BERTH_MUTATION_SEED. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Each lane is one client at a time against its own host, target group and recording backend. */
const LANES = ['kilo', 'lima', 'mike', 'oscar', 'romeo', 'sierra', 'tango', 'victor'];

/** Valid requests to mutate, for one lane's host (lane names differ in more bytes than a mutation changes). */
function corpus(host: string): string[] {
  const H = `Host: ${host}\r\n`;
  return [
    `GET / HTTP/1.1\r\n${H}\r\n`,
    `GET /a/b?c=d HTTP/1.1\r\n${H}Accept: */*\r\nUser-Agent: mutation\r\n\r\n`,
    `POST /form HTTP/1.1\r\n${H}Content-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world`,
    `POST /up HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n`,
    `POST /t HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n`,
    `GET /1 HTTP/1.1\r\n${H}\r\nGET /2 HTTP/1.1\r\n${H}\r\n`,
    `POST /1 HTTP/1.1\r\n${H}Content-Length: 3\r\n\r\nabcGET /2 HTTP/1.1\r\n${H}\r\n`,
    `GET / HTTP/1.0\r\n${H}Connection: keep-alive\r\n\r\n`,
    `GET http://${host}/abs HTTP/1.1\r\n${H}\r\n`,
    `GET /ws HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    `PUT /e HTTP/1.1\r\n${H}Expect: 100-continue\r\nContent-Length: 4\r\n\r\ndata`,
    `GET / HTTP/1.1\r\n${H}X-Forwarded-For: 1.2.3.4\r\nX-Request-Id: abc-123\r\nConnection: keep-alive\r\n\r\n`,
  ];
}
const BYTES = [
  0x00, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0x22, 0x2c, 0x2d, 0x30, 0x35, 0x3a, 0x3b, 0x3d, 0x41, 0x5f, 0x61,
  0x66, 0x7f, 0x80, 0xa0, 0xff,
];
const SNIPPETS = [
  '\r',
  '\n',
  '\r\n',
  ' ',
  '\t',
  ':',
  ',',
  ';',
  '0',
  '\r\n\r\n',
  '\r\n ',
  'chunked',
  '\xa0',
  'Content-Length: 5\r\n',
  'Content-Length: 0\r\n',
  'Transfer-Encoding: chunked\r\n',
  'Transfer-Encoding : chunked\r\n',
  '0\r\n\r\n',
  '5\r\nhello\r\n',
  'HOST_LINE',
  'GET /x HTTP/1.1\r\n',
  'Connection: close\r\n',
  'Connection: upgrade\r\nUpgrade: h2c\r\n',
  'Expect: 100-continue\r\n',
  'X_Forwarded_For: 6.6.6.6\r\n',
];

/** The numbers a number edit puts in place of a length, a chunk size or a version digit. */
const NUMBERS = ['0', '1', '4', '5', '6', '10', '00005', 'ffff', '99999999999999999999', '-1', '0x5'];

/**
 * One to three edits of `input`. `note` hears the class of each edit made (the operation and its operand: which
 * byte, snippet, length or number), for the coverage check.
 */
function mutate(input: Buffer, rnd: () => number, host: string, note: (edit: string) => void): Buffer {
  let bytes = Buffer.from(input);
  const at = (n: number) => Math.floor(rnd() * n);
  const ops = 1 + at(3);
  for (let op = 0; op < ops; op++) {
    const pos = at(bytes.length + 1);
    switch (at(7)) {
      case 0: {
        // Replace a byte.
        if (bytes.length === 0) break;
        const i = Math.min(pos, bytes.length - 1);
        const listed = rnd() < 0.8;
        bytes[i] = listed ? BYTES[at(BYTES.length)]! : at(256);
        note(listed ? `replace with 0x${bytes[i]!.toString(16)}` : 'replace with any byte');
        break;
      }
      case 1:
      case 2: {
        const pick = SNIPPETS[at(SNIPPETS.length)]!;
        note(`insert ${JSON.stringify(pick)}`);
        const snippet = Buffer.from(pick === 'HOST_LINE' ? `Host: ${host}\r\n` : pick, 'latin1');
        bytes = Buffer.concat([bytes.subarray(0, pos), snippet, bytes.subarray(pos)]);
        break;
      }
      case 3: {
        // Delete 1-4 bytes, not from the final CRLFCRLF of a last head (that only leaves the proxy waiting).
        const n = 1 + at(4);
        const keep = bytes.subarray(-4).equals(Buffer.from('\r\n\r\n')) ? bytes.length - 4 : bytes.length;
        const from = Math.min(pos, keep);
        bytes = Buffer.concat([bytes.subarray(0, from), bytes.subarray(Math.min(keep, from + n))]);
        note(`delete ${n}`);
        break;
      }
      case 4: {
        // Duplicate a line.
        const text = bytes.toString('latin1');
        const start = text.lastIndexOf('\r\n', pos) + 2;
        const end = text.indexOf('\r\n', start);
        if (start < 2 || end === -1) break;
        const line = text.slice(start, end + 2);
        bytes = Buffer.from(text.slice(0, end + 2) + line + text.slice(end + 2), 'latin1');
        note('duplicate a line');
        break;
      }
      case 5: {
        // Change the case of a run of letters.
        for (let i = pos; i < Math.min(bytes.length, pos + 8); i++) {
          const c = bytes[i]!;
          if ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) bytes[i] = c ^ 0x20;
        }
        note('change case');
        break;
      }
      case 6: {
        // Replace a number (a length, a chunk size, a version digit) with another.
        const text = bytes.toString('latin1');
        const found = /[0-9a-fA-F]+/g;
        found.lastIndex = pos;
        const m = found.exec(text) ?? /[0-9]+/.exec(text);
        if (m === null) break;
        const value = NUMBERS[at(NUMBERS.length)]!;
        note(`number ${value}`);
        bytes = Buffer.from(text.slice(0, m.index) + value + text.slice(m.index + m[0].length), 'latin1');
        break;
      }
    }
  }
  return bytes;
}

describe('HTTP/1.1 conformance: seeded mutations', {
  skip: python === undefined ? H11_MISSING : false,
}, () => {
  let proxy: ProxyProcess;
  const recordings: RecordingBackend[] = [];
  let crafted: CraftedBackend;
  let h11: H11;

  before(async () => {
    crafted = new CraftedBackend();
    await crafted.listen();
    for (const _ of LANES) {
      const recording = new RecordingBackend();
      await recording.listen();
      recordings.push(recording);
    }
    h11 = new H11(python!);
    proxy = await startProxy();
    await proxy.admin.putRouteTable({
      routes: LANES.map((lane) => ({ host: `${lane}.localhost`, backends: [{ targetGroup: lane }] })),
      targetGroups: LANES.map((lane, i) => ({
        name: lane,
        health: { path: '/__health', intervalMs: 60_000, timeoutMs: 1000 },
        responseTimeoutMs: 5000,
        targets: [{ id: lane, host: '127.0.0.1', port: recordings[i]!.port }],
      })),
    });
  });

  after(async () => {
    await proxy?.stop();
    for (const recording of recordings) await recording.close();
    await crafted?.close();
    await h11?.close();
    if (proxy !== undefined) removeDir(proxy.dataDir);
  });

  it(`${COUNT} mutated requests (seed ${SEED}): refused, or framed by llhttp and h11 exactly as the proxy did`, async (t) => {
    const failures: string[] = [];
    let failed = 0;
    let forwarded = 0;
    let refused = 0;
    const started = Date.now();
    const perLane = Math.ceil(COUNT / LANES.length);
    // Each lane's cases from its own seeded stream, all drawn first. A case that repeats an earlier one (the same
    // pieces but for the lane's host: about 8 % of them, mostly short mutations of the same request) is not run
    // again: it would send the proxy the same bytes in the same pieces.
    const drawn = new Set<string>();
    const covered = new Map<string, number>();
    const plans = LANES.map((name, index) => {
      const host = `${name}.localhost`;
      const rnd = random(SEED * 1000 + index);
      const inputs = corpus(host).map((s) => Buffer.from(s, 'latin1'));
      const cases: RequestCase[] = [];
      for (let i = 0; i < perLane; i++) {
        const request = Math.floor(rnd() * inputs.length);
        const edits: string[] = [];
        const bytes = mutate(inputs[request]!, rnd, host, (edit) => edits.push(edit));
        // One in ten arrives in three pieces, so heads are also checked while they are incomplete.
        const split =
          rnd() < 0.1
            ? [Math.floor(rnd() * bytes.length), Math.floor(rnd() * bytes.length)].sort((a, b) => a - b)
            : [];
        const cuts = [0, ...split, bytes.length];
        const pieces = cuts.slice(1).map((end, k) => bytes.subarray(cuts[k], end).toString('latin1'));
        const key = JSON.stringify(pieces.map((piece) => piece.replaceAll(host, 'HOST')));
        if (drawn.has(key)) continue;
        drawn.add(key);
        if (split.length > 0) edits.push('cut in pieces');
        for (const edit of edits) {
          const cls = `request ${request}: ${edit}`;
          covered.set(cls, (covered.get(cls) ?? 0) + 1);
        }
        cases.push({ name: `lane ${index} mutation ${i}`, bytes, expect: 'either', split });
      }
      return cases;
    });
    const classes = corpus('x').flatMap((_, request) =>
      [
        ...BYTES.map((b) => `replace with 0x${b.toString(16)}`),
        'replace with any byte',
        ...SNIPPETS.map((snippet) => `insert ${JSON.stringify(snippet)}`),
        ...[1, 2, 3, 4].map((n) => `delete ${n}`),
        'duplicate a line',
        'change case',
        ...NUMBERS.map((n) => `number ${n}`),
        'cut in pieces',
      ].map((edit) => `request ${request}: ${edit}`),
    );
    const fewest = Math.min(...classes.map((cls) => covered.get(cls) ?? 0));
    // Every edit class reached every request of the corpus at least twice (at different places): a sample too
    // small for its seed fails here instead of passing while proving less.
    assert.ok(
      fewest >= MIN_PER_CLASS,
      `a class of edits reached a request only ${fewest} times: raise BERTH_MUTATION_COUNT`,
    );
    // Lanes run side by side; within a lane one request at a time, so its upstream connections are its own.
    const lane = async (index: number) => {
      const oracle = new Oracle(proxy.http, recordings[index]!, crafted, h11);
      const cases = plans[index]!;
      for (let done = 0; done < cases.length; done += BATCH) {
        const runs: { c: RequestCase; run: Awaited<ReturnType<Oracle['runRequest']>> }[] = [];
        for (const c of cases.slice(done, done + BATCH))
          runs.push({ c, run: await oracle.runRequest(c, DEADLINE_MS) });
        const framed = await h11.frame(runs.flatMap((r) => r.run.jobs));
        let next = 0;
        for (const { c, run } of runs) {
          const clientH11 = framed[next++]!;
          const upstreamH11 = framed.slice(next, next + run.outcome.forwarded.length);
          next += run.outcome.forwarded.length;
          const problem = oracle.judgeRequest(c, run, clientH11, upstreamH11);
          if (run.outcome.refusal !== undefined) refused++;
          if (run.outcome.forwarded.length > 0) forwarded++;
          if (problem === undefined) continue;
          failed++;
          if (failures.length < 15)
            failures.push(
              `${c.name}${c.split!.length > 0 ? ` (cut at ${c.split})` : ''}: ${JSON.stringify(c.bytes.toString('latin1'))}\n  ${problem}`,
            );
        }
      }
    };
    await Promise.all(LANES.map((_, i) => lane(i)));
    const total = perLane * LANES.length;
    const distinct = drawn.size;
    const seconds = (Date.now() - started) / 1000;
    t.diagnostic(
      `${total} mutations (${distinct} distinct, run) in ${seconds.toFixed(1)} s (${LANES.length} lanes): ${forwarded} forwarded something, ${refused} refused, ${failed} failed`,
    );
    if (failed > 0)
      throw new Error(
        `${failed} of ${distinct} distinct mutations failed the oracle:\n${failures.join('\n')}`,
      );
  });
});
