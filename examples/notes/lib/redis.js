// A small Redis client (RESP2 over one connection, commands pipelined), enough for this example: no dependency.
import { connect } from 'node:net';

/** An error reply of the server (`-ERR ...`). */
export class RedisError extends Error {}

/** One RESP2 reply at `offset`, or undefined when `buffer` does not hold all of it yet. */
function parse(buffer, offset) {
  const end = buffer.indexOf('\r\n', offset);
  if (end < 0) return undefined;
  const type = buffer[offset];
  const line = buffer.toString('utf8', offset + 1, end);
  const next = end + 2;
  if (type === 0x2b) return { value: line, end: next }; // +
  if (type === 0x2d) return { value: new RedisError(line), end: next }; // -
  if (type === 0x3a) return { value: Number(line), end: next }; // :
  if (type === 0x24) {
    // $
    const length = Number(line);
    if (length < 0) return { value: null, end: next };
    if (buffer.length < next + length + 2) return undefined;
    return { value: buffer.toString('utf8', next, next + length), end: next + length + 2 };
  }
  if (type === 0x2a) {
    // *
    const count = Number(line);
    if (count < 0) return { value: null, end: next };
    const items = [];
    let at = next;
    for (let i = 0; i < count; i++) {
      const item = parse(buffer, at);
      if (item === undefined) return undefined;
      items.push(item.value);
      at = item.end;
    }
    return { value: items, end: at };
  }
  throw new Error(`unexpected reply byte ${type}`);
}

function encode(args) {
  let out = `*${args.length}\r\n`;
  for (const arg of args) {
    const text = String(arg);
    out += `$${Buffer.byteLength(text)}\r\n${text}\r\n`;
  }
  return out;
}

/**
 * A client for `redis://user:password@host:port`: one connection, opened on first use and again after it breaks;
 * replies come back in the order commands were sent, so any number may be in flight.
 */
export function createRedis(url) {
  const target = new URL(url);
  const port = Number(target.port || 6379);
  const auth =
    target.password === ''
      ? null
      : [decodeURIComponent(target.username || 'default'), decodeURIComponent(target.password)];
  let socket;
  let ready;
  const pending = [];
  let buffer = Buffer.alloc(0);

  function open() {
    socket = connect({ host: target.hostname, port });
    socket.setNoDelay(true);
    buffer = Buffer.alloc(0);
    const opened = new Promise((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.on('data', (chunk) => {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
      let at = 0;
      for (;;) {
        const reply = parse(buffer, at);
        if (reply === undefined) break;
        at = reply.end;
        const waiter = pending.shift();
        if (reply.value instanceof RedisError) waiter?.reject(reply.value);
        else waiter?.resolve(reply.value);
      }
      buffer = buffer.subarray(at);
    });
    const broken = (error) => {
      ready = undefined;
      for (const waiter of pending.splice(0)) waiter.reject(error ?? new Error('connection to Redis closed'));
    };
    socket.on('error', broken);
    socket.on('close', () => broken());
    return opened.then(() => (auth === null ? undefined : send(['AUTH', ...auth])));
  }

  function send(args) {
    return new Promise((resolve, reject) => {
      pending.push({ resolve, reject });
      socket.write(encode(args));
    });
  }

  return {
    async command(...args) {
      ready ??= open().catch((error) => {
        ready = undefined;
        socket?.destroy();
        throw error;
      });
      await ready;
      return send(args);
    },
    close() {
      socket?.destroy();
    },
  };
}
