// A container's output, copied from the engine's log into the instance's JSON-lines file, scrubbed like a shim's.
import { closeSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { DockerEngine } from '../docker/docker-engine.js';
import { LogFrameReader } from '../docker/docker-engine.js';
import { OutputLog, type OutputStream } from './output-log.js';

/** How far back the end of an output file is read to find its last line's time. */
const TAIL_BYTES = 64 * 1024;

/**
 * Copies a container's output into `logPath` in the shim's format (`{"t","s","l"}` per line, secret values replaced
 * by `[secret:NAME]`, long lines split), timestamped with the time the engine read each line. The engine keeps the
 * output meanwhile (its log driver), so a control plane that restarts resumes where the file ends: lines later than
 * its last one are copied, nothing is lost, and at most the lines of that one millisecond could be copied twice.
 */
export class ContainerLog {
  readonly #fd: number;
  readonly #log: OutputLog;
  readonly #streams: Record<'out' | 'err', OutputStream>;
  /** Lines before this time (epoch ms) are in the file: where a copy resumes. */
  #resumeAt: number;
  #lineTime = 0;

  constructor(logPath: string, scrub: Readonly<Record<string, string>>) {
    mkdirSync(dirname(logPath), { recursive: true });
    this.#resumeAt = lastTimeIn(logPath);
    this.#fd = openSync(logPath, 'a', 0o600);
    // Each line is stamped with the engine's time for it, not the time we copy it.
    this.#log = new OutputLog({ fd: this.#fd, scrub, now: () => this.#lineTime });
    this.#streams = { out: this.#log.stream('out'), err: this.#log.stream('err') };
  }

  /** The engine's `since` for a copy: the millisecond of the last line written, so nothing is skipped. */
  get since(): string | undefined {
    const at = this.#resumeAt;
    if (at === 0) return undefined;
    return `${Math.floor(at / 1000)}.${String((at % 1000) * 1_000_000).padStart(9, '0')}`;
  }

  /**
   * Copies the container's output until the engine ends the stream (with `follow`, when the container stops) or
   * `signal` aborts; resolves either way, rejects only when the engine cannot be asked.
   */
  async copy(engine: DockerEngine, container: string, options: { follow: boolean; signal?: AbortSignal }) {
    const since = this.since;
    const response = await engine.logs(container, {
      follow: options.follow,
      ...(since === undefined ? {} : { since }),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const frames = new LogFrameReader();
    try {
      for await (const chunk of response) {
        for (const frame of frames.push(chunk as Buffer)) {
          this.#lineTime = frame.t;
          this.#resumeAt = frame.t;
          this.#streams[frame.stream].push(frame.text);
        }
      }
    } catch (error) {
      if (!options.signal?.aborted) throw error;
    }
  }

  /** Writes what is left (a partial last line) and closes the file. */
  async close(): Promise<void> {
    await this.#log.close();
    closeSync(this.#fd);
  }
}

/** The time (epoch ms) of the last line of an output file; 0 when it has none. */
function lastTimeIn(logPath: string): number {
  let fd: number;
  try {
    fd = openSync(logPath, 'r');
  } catch {
    return 0;
  }
  try {
    const size = statSync(logPath).size;
    const length = Math.min(size, TAIL_BYTES);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    const lines = buffer.toString('utf8').split('\n');
    for (let i = lines.length - 1; i >= 0; i--) {
      const line = lines[i]!;
      if (line === '') continue;
      try {
        const t = (JSON.parse(line) as { t?: unknown }).t;
        if (typeof t === 'number') return t;
      } catch {
        // A line cut by the tail's start, or torn by a crash: look at the one before.
      }
    }
    return 0;
  } finally {
    closeSync(fd);
  }
}
