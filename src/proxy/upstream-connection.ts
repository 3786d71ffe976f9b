// One pooled TCP (or TLS, to an external origin) connection to a target, with permanent listeners that forward to
// whoever holds it.
import net from 'node:net';
import tls from 'node:tls';

/** Whoever currently uses an upstream connection (an exchange of a client connection). */
export interface UpstreamOwner {
  /** `chunk` is a view into a shared read buffer, valid only during the call: copy what you keep or write. */
  onUpstreamData(conn: UpstreamConnection, chunk: Buffer): void;
  onUpstreamClosed(conn: UpstreamConnection, error: NodeJS.ErrnoException | undefined): void;
  onUpstreamConnect(conn: UpstreamConnection): void;
  onUpstreamDrain(conn: UpstreamConnection): void;
}

/**
 * One read buffer shared by every upstream socket: reads land here (no allocation per read, no stream `push`).
 * Owners get a view into it that is only valid during the call, and must copy what they keep or write.
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/**
 * Wraps a socket so that listeners are attached once for its whole life (adding and removing listeners per
 * request is a measurable cost in Node). `owner` is null while the connection idles in its target's pool.
 */
export class UpstreamConnection {
  readonly socket: net.Socket;
  owner: UpstreamOwner | null = null;
  connected = false;
  closed = false;
  /** Requests served on this connection so far (a reused connection may have been closed by the peer). */
  uses = 0;
  /** When it went back to the pool (ms, monotonic), for idle expiry. */
  idleSince = 0;
  #error: NodeJS.ErrnoException | undefined;
  readonly #onClose: (conn: UpstreamConnection) => void;

  /**
   * `secure` makes it a TLS connection (an external origin): it counts as connected only once the handshake and the
   * certificate check passed, so a refused certificate is a failed connect that carried no byte of the request.
   */
  constructor(
    host: string,
    port: number,
    onClose: (conn: UpstreamConnection) => void,
    secure?: tls.ConnectionOptions,
  ) {
    this.#onClose = onClose;
    const options = {
      host,
      port,
      noDelay: true,
      onread: {
        buffer: READ_BUFFER,
        callback: (n: number, buf: Uint8Array) => {
          if (this.owner !== null) this.owner.onUpstreamData(this, (buf as Buffer).subarray(0, n));
          else socket.destroy(); // Unsolicited bytes on an idle connection: it cannot be reused safely.
          return true;
        },
      },
    };
    const socket: net.Socket =
      secure === undefined ? net.connect(options) : tls.connect({ ...options, ...secure });
    this.socket = socket;
    socket.on(secure === undefined ? 'connect' : 'secureConnect', () => {
      this.connected = true;
      this.owner?.onUpstreamConnect(this);
    });
    socket.on('drain', () => this.owner?.onUpstreamDrain(this));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.#error = err;
    });
    socket.on('end', () => {
      // Half-close from the peer: we never keep half-open upstream connections.
      socket.destroy();
    });
    socket.on('close', () => {
      this.closed = true;
      this.#onClose(this);
      const owner = this.owner;
      this.owner = null;
      owner?.onUpstreamClosed(this, this.#error);
    });
  }

  destroy(): void {
    if (!this.closed) this.socket.destroy();
  }
}
