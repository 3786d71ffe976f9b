// An upgraded connection (WebSocket): bytes both ways with backpressure, an idle timeout, and a lease on its target.
import type { ClientConnection } from './client-connection.js';
import type { InFlightLease, Target } from './target.js';
import type { UpstreamConnection, UpstreamOwner } from './upstream-connection.js';

/**
 * After a 101 the client connection and its upstream connection are a byte pipe. It counts as `upgraded` on its
 * target (draining waits for it, and closes it when the drain time is over) and is closed when no byte has moved
 * either way for the route's tunnel idle timeout, checked by the proxy's sweep.
 */
export class Tunnel implements UpstreamOwner {
  readonly #client: ClientConnection;
  readonly #upstream: UpstreamConnection;
  readonly #lease: InFlightLease;
  readonly #idleMs: number;
  #upstreamPaused = false;
  /** Bumped whenever bytes move; the sweep sees idleness when it stops changing. */
  #progress = 0;
  #seenProgress = 0;
  #idleSince: number;

  constructor(
    client: ClientConnection,
    upstream: UpstreamConnection,
    target: Target,
    idleMs: number,
    now: number,
  ) {
    this.#client = client;
    this.#upstream = upstream;
    this.#idleMs = idleMs;
    this.#idleSince = now;
    this.#lease = target.openTunnel(() => this.close());
    upstream.owner = this;
  }

  onClientData(chunk: Buffer): void {
    this.#progress++;
    if (!this.#upstream.socket.write(chunk)) this.#client.pause('backpressure');
  }

  onClientDrain(): void {
    this.#progress++;
    if (this.#upstreamPaused) {
      this.#upstreamPaused = false;
      this.#upstream.socket.resume();
    }
  }

  /** The client's end: the upstream goes too. */
  onClientClose(): void {
    this.#upstream.destroy();
    this.#lease.end();
  }

  onUpstreamData(conn: UpstreamConnection, chunk: Buffer): void {
    this.#progress++;
    // Copied: `chunk` is a view into the shared upstream read buffer.
    if (!this.#client.write(Buffer.from(chunk))) {
      this.#upstreamPaused = true;
      conn.socket.pause();
    }
  }

  onUpstreamDrain(): void {
    this.#progress++;
    this.#client.resume('backpressure');
  }

  onUpstreamConnect(): void {}

  /** The upstream's end: the client's connection ends after what was written to it. */
  onUpstreamClosed(): void {
    this.#client.socket.end();
    this.#lease.end();
  }

  /** Called by the proxy's sweep through the client connection. */
  checkTimers(now: number): void {
    if (this.#progress !== this.#seenProgress) {
      this.#seenProgress = this.#progress;
      this.#idleSince = now;
    } else if (now - this.#idleSince >= this.#idleMs) {
      this.close();
    }
  }

  /** Closes both sides (idle, or the target's drain time is over). */
  close(): void {
    this.#client.socket.destroy();
    this.#upstream.destroy();
    this.#lease.end();
  }
}
