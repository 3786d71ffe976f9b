// A small PostgreSQL client (protocol 3.0, SCRAM-SHA-256, extended queries with text parameters) and a pool of
// such connections, enough for this example: no dependency.
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { connect } from 'node:net';

/** An error the server reported, with its SQLSTATE `code`. */
export class PostgresError extends Error {
  constructor(fields) {
    super(fields.M ?? 'unknown error');
    this.code = fields.C;
    this.detail = fields.D;
  }
}

const hmac = (key, text) => createHmac('sha256', key).update(text).digest();
const sha256 = (data) => createHash('sha256').update(data).digest();

function message(type, body) {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

const cstring = (text) => Buffer.from(`${text}\0`, 'utf8');

function int16(n) {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
}

function int32(n) {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

/** Fields of an ErrorResponse or NoticeResponse. */
function fieldsOf(body) {
  const fields = {};
  let at = 0;
  while (at < body.length && body[at] !== 0) {
    const code = String.fromCharCode(body[at]);
    const end = body.indexOf(0, at + 1);
    fields[code] = body.toString('utf8', at + 1, end);
    at = end + 1;
  }
  return fields;
}

/** One connection: opens with SCRAM authentication, then runs one query at a time (the pool queues them). */
class Connection {
  #socket;
  #buffer = Buffer.alloc(0);
  #onMessage;
  #closed;

  static async open(url) {
    const connection = new Connection();
    await connection.#start(url);
    return connection;
  }

  get closed() {
    return this.#closed !== undefined;
  }

  async #start(url) {
    const target = new URL(url);
    const user = decodeURIComponent(target.username);
    const password = decodeURIComponent(target.password);
    const database = target.pathname.slice(1) || user;
    this.#socket = connect({ host: target.hostname, port: Number(target.port || 5432) });
    this.#socket.setNoDelay(true);
    this.#socket.on('data', (chunk) => this.#receive(chunk));
    const fail = (error) => {
      this.#closed ??= error ?? new Error('connection to PostgreSQL closed');
      this.#onMessage?.(null);
    };
    this.#socket.on('error', fail);
    this.#socket.on('close', () => fail());
    await new Promise((resolve, reject) => {
      this.#socket.once('connect', resolve);
      this.#socket.once('error', reject);
    });
    const params = Buffer.concat([
      int32(196608),
      cstring('user'),
      cstring(user),
      cstring('database'),
      cstring(database),
      cstring('application_name'),
      cstring('notes'),
      Buffer.from([0]),
    ]);
    this.#socket.write(Buffer.concat([int32(params.length + 4), params]));
    const nonce = randomBytes(18).toString('base64');
    const clientFirstBare = `n=,r=${nonce}`;
    let serverSignature;
    await this.#exchange((type, body) => {
      if (type === 'R') {
        const code = body.readInt32BE(0);
        if (code === 0) return false;
        if (code === 10) {
          const first = Buffer.from(`n,,${clientFirstBare}`);
          this.#socket.write(
            message('p', Buffer.concat([cstring('SCRAM-SHA-256'), int32(first.length), first])),
          );
          return false;
        }
        if (code === 11) {
          const serverFirst = body.toString('utf8', 4);
          const parts = Object.fromEntries(serverFirst.split(',').map((p) => [p[0], p.slice(2)]));
          if (!parts.r.startsWith(nonce)) throw new Error('SCRAM: the server changed the nonce');
          const salted = pbkdf2Sync(password, Buffer.from(parts.s, 'base64'), Number(parts.i), 32, 'sha256');
          const clientKey = hmac(salted, 'Client Key');
          const withoutProof = `c=biws,r=${parts.r}`;
          const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
          const signature = hmac(sha256(clientKey), authMessage);
          const proof = Buffer.from(clientKey.map((byte, i) => byte ^ signature[i])).toString('base64');
          serverSignature = hmac(hmac(salted, 'Server Key'), authMessage).toString('base64');
          this.#socket.write(message('p', Buffer.from(`${withoutProof},p=${proof}`)));
          return false;
        }
        if (code === 12) {
          if (body.toString('utf8', 4) !== `v=${serverSignature}`)
            throw new Error('SCRAM: wrong server signature');
          return false;
        }
        throw new Error(`unsupported authentication method ${code} (this client speaks SCRAM-SHA-256 only)`);
      }
      return type === 'Z';
    });
  }

  /** Runs `text` with `params` ($1, $2 … as text); resolves with the rows as objects of strings (or null). */
  async query(text, params = []) {
    const values = params.map((value) => {
      if (value === null || value === undefined) return int32(-1);
      const bytes = Buffer.from(String(value), 'utf8');
      return Buffer.concat([int32(bytes.length), bytes]);
    });
    this.#socket.write(
      Buffer.concat([
        message('P', Buffer.concat([cstring(''), cstring(text), int16(0)])),
        message(
          'B',
          Buffer.concat([cstring(''), cstring(''), int16(0), int16(params.length), ...values, int16(0)]),
        ),
        message('D', Buffer.concat([Buffer.from('P'), cstring('')])),
        message('E', Buffer.concat([cstring(''), int32(0)])),
        message('S', Buffer.alloc(0)),
      ]),
    );
    let columns = [];
    const rows = [];
    await this.#exchange((type, body) => {
      if (type === 'T') {
        columns = [];
        let at = 2;
        for (let i = 0; i < body.readInt16BE(0); i++) {
          const end = body.indexOf(0, at);
          columns.push(body.toString('utf8', at, end));
          at = end + 1 + 18;
        }
      } else if (type === 'D') {
        const row = {};
        let at = 2;
        for (let i = 0; i < body.readInt16BE(0); i++) {
          const length = body.readInt32BE(at);
          at += 4;
          row[columns[i]] = length < 0 ? null : body.toString('utf8', at, at + length);
          if (length > 0) at += length;
        }
        rows.push(row);
      }
      return type === 'Z';
    });
    return rows;
  }

  close() {
    this.#socket?.end(message('X', Buffer.alloc(0)));
  }

  /**
   * Hands each message to `handle` until it returns true (ReadyForQuery). An ErrorResponse rejects, once the
   * server is ready again (it sends ReadyForQuery after an error too, except during the startup).
   */
  #exchange(handle) {
    return new Promise((resolve, reject) => {
      let failure;
      this.#onMessage = (msg) => {
        if (msg === null) {
          this.#onMessage = undefined;
          reject(failure ?? this.#closed);
          return;
        }
        try {
          if (msg.type === 'E') failure ??= new PostgresError(fieldsOf(msg.body));
          else if (failure === undefined && handle(msg.type, msg.body) !== true) return;
          else if (msg.type !== 'Z') return;
          this.#onMessage = undefined;
          if (failure) reject(failure);
          else resolve();
        } catch (error) {
          this.#onMessage = undefined;
          this.#socket.destroy();
          reject(error);
        }
      };
      if (this.#closed) this.#onMessage(null);
    });
  }

  #receive(chunk) {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    let at = 0;
    while (this.#buffer.length - at >= 5) {
      const length = this.#buffer.readInt32BE(at + 1);
      if (this.#buffer.length - at < length + 1) break;
      const type = String.fromCharCode(this.#buffer[at]);
      const body = this.#buffer.subarray(at + 5, at + 1 + length);
      at += length + 1;
      this.#onMessage?.({ type, body });
    }
    this.#buffer = this.#buffer.subarray(at);
  }
}

/** Up to `size` connections to `url`, opened on demand; a broken one is replaced by the next query. */
export function createPool(url, size = 4) {
  const idle = [];
  const waiting = [];
  let open = 0;

  async function acquire() {
    const connection = idle.pop();
    if (connection !== undefined) return connection;
    if (open < size) {
      open++;
      try {
        return await Connection.open(url);
      } catch (error) {
        open--;
        throw error;
      }
    }
    return new Promise((resolve) => waiting.push(resolve));
  }

  function release(connection) {
    if (connection.closed) {
      open--;
      const next = waiting.shift();
      if (next) acquire().then(next, () => next(undefined));
      return;
    }
    const next = waiting.shift();
    if (next) next(connection);
    else idle.push(connection);
  }

  return {
    async query(text, params) {
      const connection = await acquire();
      if (connection === undefined) throw new Error('no connection to PostgreSQL');
      try {
        return await connection.query(text, params);
      } finally {
        release(connection);
      }
    },
    close() {
      for (const connection of idle.splice(0)) connection.close();
    },
  };
}
