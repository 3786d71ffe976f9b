// Optional JSON-lines access log, written through a buffered stream so the hot path never blocks on I/O.
import { createWriteStream, type WriteStream } from 'node:fs';

/** One line of the access log. */
export interface AccessLogEntry {
  time: string;
  requestId: string;
  client: string;
  proto: 'http' | 'https';
  method: string;
  host: string;
  path: string;
  status: number;
  ms: number;
  bytesIn: number;
  bytesOut: number;
  targetGroup: string | undefined;
  target: string | undefined;
}

/** Appends entries to a file (or any writable stream), one JSON object per line. */
export class AccessLog {
  readonly #out: NodeJS.WritableStream;
  #lines: string[] = [];
  #scheduled = false;

  constructor(out: NodeJS.WritableStream) {
    this.#out = out;
  }

  static toFile(path: string): AccessLog {
    const stream: WriteStream = createWriteStream(path, { flags: 'a' });
    return new AccessLog(stream);
  }

  write(entry: AccessLogEntry): void {
    this.#lines.push(JSON.stringify(entry));
    if (!this.#scheduled) {
      this.#scheduled = true;
      // Batch the lines of one event-loop turn into one write.
      setImmediate(this.#flush);
    }
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    if (this.#lines.length === 0) return;
    const text = `${this.#lines.join('\n')}\n`;
    this.#lines = [];
    this.#out.write(text);
  };

  close(): Promise<void> {
    this.#flush();
    return new Promise((resolve) => {
      if (this.#out === process.stdout || this.#out === process.stderr) resolve();
      else this.#out.end(() => resolve());
    });
  }
}
