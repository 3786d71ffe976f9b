// A small RESP2 client for Berth's own use of an add-on Redis (readiness, ACLs, BGSAVE): one command at a time.
import { connect, type Socket } from 'node:net';

export type RespValue = string | number | null | RespValue[];

/** An error reply of the server (`-ERR ...`, `-WRONGPASS ...`). */
export class RedisReplyError extends Error {}

/**
 * One connection to a Redis server, commands sent one after another (Berth's administrative use needs no
 * pipelining). `open` connects and, given credentials, authenticates (`AUTH user password`).
 */
export class RedisConnection {
  readonly #socket: Socket;
  #buffer: Buffer = Buffer.alloc(0);
  #waiting: { resolve: (value: RespValue) => void; reject: (error: Error) => void } | undefined;
  #closed: Error | undefined;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
      this.#drain();
    });
    const fail = (error: Error): void => {
      this.#closed ??= error;
      this.#waiting?.reject(error);
      this.#waiting = undefined;
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed by the server')));
  }

  static async open(
    port: number,
    options: { user?: string; password?: string; timeoutMs?: number; host?: string } = {},
  ): Promise<RedisConnection> {
    const socket = connect({ host: options.host ?? '127.0.0.1', port });
    socket.setNoDelay(true);
    const timeoutMs = options.timeoutMs ?? 5000;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no connection to 127.0.0.1:${port} within ${timeoutMs}ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
    const connection = new RedisConnection(socket);
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no answer within ${timeoutMs}ms`)));
    if (options.password !== undefined) {
      try {
        await connection.command(
          options.user === undefined ? ['AUTH', options.password] : ['AUTH', options.user, options.password],
        );
      } catch (error) {
        connection.close();
        throw error;
      }
    }
    return connection;
  }

  /** Sends one command and resolves with its reply; an error reply rejects with `RedisReplyError`. */
  command(args: readonly string[]): Promise<RespValue> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (this.#waiting) return Promise.reject(new Error('one command at a time'));
    const parts = [`*${args.length}\r\n`];
    for (const arg of args) parts.push(`$${Buffer.byteLength(arg)}\r\n${arg}\r\n`);
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject };
      this.#socket.write(parts.join(''));
    });
  }

  close(): void {
    this.#socket.destroy();
  }

  #drain(): void {
    if (!this.#waiting) return;
    const parsed = parseReply(this.#buffer, 0);
    if (parsed === undefined) return;
    this.#buffer = this.#buffer.subarray(parsed.end);
    const waiting = this.#waiting;
    this.#waiting = undefined;
    if (parsed.value instanceof RedisReplyError) waiting.reject(parsed.value);
    else waiting.resolve(parsed.value);
  }
}

/** One RESP2 reply at `offset`, or undefined when the buffer does not hold all of it yet. */
export function parseReply(
  buffer: Buffer,
  offset: number,
): { value: RespValue | RedisReplyError; end: number } | undefined {
  const lineEnd = buffer.indexOf('\r\n', offset);
  if (lineEnd < 0) return undefined;
  const type = String.fromCharCode(buffer[offset]!);
  const line = buffer.toString('utf8', offset + 1, lineEnd);
  const next = lineEnd + 2;
  switch (type) {
    case '+':
      return { value: line, end: next };
    case '-':
      return { value: new RedisReplyError(line), end: next };
    case ':':
      return { value: Number(line), end: next };
    case '$': {
      const length = Number(line);
      if (length < 0) return { value: null, end: next };
      if (buffer.length < next + length + 2) return undefined;
      return { value: buffer.toString('utf8', next, next + length), end: next + length + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, end: next };
      const items: RespValue[] = [];
      let at = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buffer, at);
        if (item === undefined) return undefined;
        // An error inside an array (EXEC) is kept as its text.
        items.push(item.value instanceof RedisReplyError ? item.value.message : item.value);
        at = item.end;
      }
      return { value: items, end: at };
    }
    default:
      throw new Error(
        `unexpected reply from Redis: ${JSON.stringify(buffer.toString('utf8', offset, lineEnd))}`,
      );
  }
}

/** `INFO <section>` as fields: `rdb_bgsave_in_progress` → `0`. */
export function parseInfo(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\r\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 1);
  }
  return fields;
}
