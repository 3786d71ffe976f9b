// A tiny authoritative DNS server for ACME tests: every name resolves to 127.0.0.1 unless told otherwise, TXT
// records come from a directory that a DNS-01 hook command writes (one file per name, one value per line).
import dgram from 'node:dgram';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const TYPE_A = 1;
const TYPE_TXT = 16;
const CLASS_IN = 1;

export interface DnsResponderOptions {
  /** Where TXT records live: `<dir>/<name>` (lower case, no trailing dot), one value per line. */
  txtDir: string;
  /** The address every A query gets (default 127.0.0.1). */
  address?: string;
}

/**
 * Answers A queries with one address (or NXDOMAIN for names in `nxdomain`), TXT queries from `txtDir`, and every
 * other type (AAAA, CAA) with an empty NOERROR answer, so that a resolver falls back to the A record.
 */
export class DnsResponder {
  readonly nxdomain = new Set<string>();
  readonly queries: { name: string; type: number }[] = [];
  readonly #socket = dgram.createSocket('udp4');
  readonly #options: DnsResponderOptions;

  private constructor(options: DnsResponderOptions) {
    this.#options = options;
  }

  static async start(options: DnsResponderOptions): Promise<DnsResponder> {
    const responder = new DnsResponder(options);
    const socket = responder.#socket;
    socket.on('message', (message, remote) => {
      const answer = responder.#answer(message);
      if (answer !== undefined) socket.send(answer, remote.port, remote.address);
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, '127.0.0.1', () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return responder;
  }

  /** `127.0.0.1:<port>`, for `pebble -dnsserver`. */
  get address(): string {
    return `127.0.0.1:${this.#socket.address().port}`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }

  #answer(query: Buffer): Buffer | undefined {
    if (query.length < 12 || query.readUInt16BE(4) < 1) return undefined;
    // The first question: labels, then type and class.
    const labels: string[] = [];
    let at = 12;
    while (at < query.length && query[at] !== 0) {
      const length = query[at]!;
      if (length > 63 || at + 1 + length > query.length) return undefined;
      labels.push(query.toString('latin1', at + 1, at + 1 + length));
      at += 1 + length;
    }
    const questionEnd = at + 5;
    if (questionEnd > query.length) return undefined;
    const type = query.readUInt16BE(at + 1);
    const name = labels.join('.').toLowerCase();
    this.queries.push({ name, type });
    const records: Buffer[] = [];
    let rcode = 0;
    if (this.nxdomain.has(name)) rcode = 3;
    else if (type === TYPE_A) {
      records.push(Buffer.from((this.#options.address ?? '127.0.0.1').split('.').map(Number)));
    } else if (type === TYPE_TXT) {
      const file = join(this.#options.txtDir, name);
      const values = existsSync(file)
        ? readFileSync(file, 'utf8')
            .split('\n')
            .filter((v) => v !== '')
        : [];
      for (const value of values) {
        const text = Buffer.from(value, 'utf8');
        records.push(Buffer.concat([Buffer.from([text.length]), text]));
      }
    }
    const header = Buffer.alloc(12);
    query.copy(header, 0, 0, 2); // id
    // QR, the query's opcode and RD, AA; RCODE.
    header[2] = 0x80 | (query[2]! & 0x79) | 0x04;
    header[3] = rcode;
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(records.length, 6);
    const answers = records.map((rdata) => {
      const record = Buffer.alloc(12);
      record.writeUInt16BE(0xc00c, 0); // the question's name
      record.writeUInt16BE(type, 2);
      record.writeUInt16BE(CLASS_IN, 4);
      record.writeUInt32BE(0, 6); // TTL 0: nothing is cached between a hook's change and the next query
      record.writeUInt16BE(rdata.length, 10);
      return Buffer.concat([record, rdata]);
    });
    return Buffer.concat([header, query.subarray(12, questionEnd), ...answers]);
  }
}
