// An instance's output as JSON lines in one file: scrubbed, timestamped, split into lines, written without blocking.
import { write } from 'node:fs';
import { StreamScrubber } from '../secrets/scrubber.js';

/** One line of an instance's output file: `{"t":<epoch ms>,"s":"out"|"err","l":"<text>"}`. */
export interface OutputRecord {
  t: number;
  s: 'out' | 'err';
  l: string;
}

export interface OutputLogOptions {
  /** An open file descriptor (opened for append). */
  fd: number;
  /** Secret values to scrub from the output, name → value. */
  scrub?: Readonly<Record<string, string>>;
  /** Lines queued for the disk beyond this are dropped (and counted): the app must never wait for us. */
  maxQueueBytes?: number;
  /** Longer lines are split into pieces of at most this many bytes. */
  maxLineBytes?: number;
  /** A partial last line is written after this long without a newline. */
  partialFlushMs?: number;
  now?: () => number;
  /** Replaceable for tests (a slow disk); defaults to `fs.write`. */
  write?: (fd: number, data: Buffer, callback: (error: Error | null, written: number) => void) => void;
}

export const DEFAULT_MAX_QUEUE_BYTES = 32 * 1024 * 1024;
export const DEFAULT_MAX_LINE_BYTES = 16 * 1024;
export const DEFAULT_PARTIAL_FLUSH_MS = 200;

const NEWLINE = 0x0a;

/** Writes the lines of an instance's stdout and stderr to one file, in the order they were read. */
export class OutputLog {
  readonly #fd: number;
  readonly #maxQueueBytes: number;
  readonly #now: () => number;
  readonly #write: NonNullable<OutputLogOptions['write']>;
  readonly #streams: OutputStream[] = [];
  #queue: string[] = [];
  #queuedBytes = 0;
  #dropped = 0;
  #writing = false;
  #drained: (() => void)[] = [];
  /** Lines dropped in total, for tests and the shim's own accounting. */
  droppedTotal = 0;

  constructor(readonly options: OutputLogOptions) {
    this.#fd = options.fd;
    this.#maxQueueBytes = options.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES;
    this.#now = options.now ?? Date.now;
    this.#write = options.write ?? ((fd, data, callback) => write(fd, data, 0, data.length, null, callback));
  }

  /** The writer for one of the instance's streams. */
  stream(kind: 'out' | 'err'): OutputStream {
    const stream = new OutputStream(kind, this, this.options);
    this.#streams.push(stream);
    return stream;
  }

  /** Queues one record; drops it (counting) when the queue is full. */
  record(kind: 'out' | 'err', text: string): void {
    const line = `${JSON.stringify({ t: this.#now(), s: kind, l: text } satisfies OutputRecord)}\n`;
    if (this.#queuedBytes + line.length > this.#maxQueueBytes) {
      this.#dropped++;
      this.droppedTotal++;
      return;
    }
    this.#enqueue(line);
  }

  /** Flushes partial lines, writes everything queued, and resolves when it is on disk. */
  async close(): Promise<void> {
    for (const stream of this.#streams) stream.end();
    this.#noteDrops();
    if (!this.#writing && this.#queue.length === 0) return;
    await new Promise<void>((resolve) => this.#drained.push(resolve));
  }

  #enqueue(line: string): void {
    this.#queue.push(line);
    this.#queuedBytes += line.length;
    if (!this.#writing) this.#writeNext();
  }

  #noteDrops(): void {
    if (this.#dropped === 0) return;
    const marker = JSON.stringify({
      t: this.#now(),
      s: 'err',
      l: `[berth: ${this.#dropped} lines dropped]`,
    } satisfies OutputRecord);
    this.#dropped = 0;
    this.#enqueue(`${marker}\n`);
  }

  #writeNext(): void {
    if (this.#queue.length === 0) {
      this.#writing = false;
      for (const resolve of this.#drained.splice(0)) resolve();
      return;
    }
    this.#writing = true;
    // Everything queued goes in one write: under a burst the queue batches itself.
    const data = Buffer.from(this.#queue.join(''), 'utf8');
    const queuedChars = this.#queuedBytes;
    this.#queue = [];
    const writeAll = (offset: number): void => {
      this.#write(this.#fd, data.subarray(offset), (error, written) => {
        if (!error && offset + written < data.length) return writeAll(offset + written);
        // A failed write (disk full, ...) loses these lines; there is no one to tell but the file itself.
        this.#queuedBytes -= queuedChars;
        if (error) {
          let lines = 0;
          for (let at = data.indexOf(NEWLINE); at !== -1; at = data.indexOf(NEWLINE, at + 1)) lines++;
          this.#dropped += lines;
          this.droppedTotal += lines;
        }
        this.#noteDrops();
        this.#writeNext();
      });
    };
    writeAll(0);
  }
}

/** Splits one stream's bytes into lines (after scrubbing), writing a partial line after a quiet spell. */
export class OutputStream {
  readonly #kind: 'out' | 'err';
  readonly #log: OutputLog;
  readonly #scrubber: StreamScrubber;
  readonly #maxLineBytes: number;
  readonly #partialFlushMs: number;
  #pending: Buffer = Buffer.alloc(0);
  #timer: NodeJS.Timeout | undefined;

  constructor(kind: 'out' | 'err', log: OutputLog, options: OutputLogOptions) {
    this.#kind = kind;
    this.#log = log;
    this.#scrubber = new StreamScrubber(options.scrub ?? {});
    this.#maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    this.#partialFlushMs = options.partialFlushMs ?? DEFAULT_PARTIAL_FLUSH_MS;
  }

  push(chunk: Buffer): void {
    const completedLine = this.#take(this.#scrubber.push(chunk));
    // The quiet spell is counted from the last complete line, so a partial line waits its full time.
    if (completedLine && this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#pending.length > 0 || this.#scrubber.pendingBytes > 0) {
      this.#timer ??= setTimeout(() => {
        this.#timer = undefined;
        this.#flushPartial(false);
      }, this.#partialFlushMs);
    }
  }

  /** Writes whatever is left, e.g. when the app exits. */
  end(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#flushPartial(true);
  }

  /**
   * Writes the partial line. What the scrubber holds back (a tail that may start a secret value) is released only at
   * the end: an app that prints a secret in two writes further apart than the quiet spell would otherwise have the
   * rest of it written in clear.
   */
  #flushPartial(atEnd: boolean): void {
    if (atEnd) this.#take(this.#scrubber.flush());
    if (this.#pending.length > 0) this.#emit(this.#pending);
    this.#pending = Buffer.alloc(0);
  }

  /** Splits off complete lines; true when there was at least one. */
  #take(data: Buffer): boolean {
    if (data.length === 0) return false;
    let buffer = this.#pending.length === 0 ? data : Buffer.concat([this.#pending, data]);
    let start = 0;
    for (;;) {
      const newline = buffer.indexOf(NEWLINE, start);
      if (newline === -1) break;
      this.#emit(buffer.subarray(start, newline));
      start = newline + 1;
    }
    const completed = start > 0;
    buffer = buffer.subarray(start);
    while (buffer.length > this.#maxLineBytes) {
      const cut = utf8Boundary(buffer, this.#maxLineBytes);
      this.#emit(buffer.subarray(0, cut));
      buffer = buffer.subarray(cut);
    }
    // Copy, so the (possibly large) chunk it came from can be collected.
    this.#pending = Buffer.from(buffer);
    return completed;
  }

  #emit(line: Buffer): void {
    let rest = line;
    while (rest.length > this.#maxLineBytes) {
      const cut = utf8Boundary(rest, this.#maxLineBytes);
      this.#write(rest.subarray(0, cut));
      rest = rest.subarray(cut);
    }
    this.#write(rest);
  }

  #write(line: Buffer): void {
    const end = line.length > 0 && line[line.length - 1] === 0x0d ? line.length - 1 : line.length;
    this.#log.record(this.#kind, line.toString('utf8', 0, end));
  }
}

/** The largest cut ≤ `limit` that does not split a UTF-8 character (continuation bytes are 10xxxxxx). */
function utf8Boundary(buffer: Buffer, limit: number): number {
  let cut = limit;
  while (cut > limit - 4 && cut > 0 && ((buffer[cut] ?? 0) & 0xc0) === 0x80) cut--;
  return cut > 0 ? cut : limit;
}
