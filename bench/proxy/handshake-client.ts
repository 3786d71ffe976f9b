// Benchmark client: opens new TLS connections for a while (full handshakes, or resumed with a session ticket) and
// prints {"handshakes","seconds","resumed","errors"}. Its own process, so its CPU is never the server's.
import { readFileSync } from 'node:fs';
import tls from 'node:tls';

const [portText, servername, caFile, mode, secondsText, concurrencyText] = process.argv.slice(2);
const port = Number(portText);
const ca = readFileSync(caFile!);
const seconds = Number(secondsText ?? 5);
const concurrency = Number(concurrencyText ?? 4);
const resume = mode === 'resumed';
/** `TLSv1.2` measures TLS 1.2 resumption (no key exchange at all); default TLS 1.3 (resumption still does ECDHE). */
const maxVersion = (process.env.BENCH_MAX_TLS ?? 'TLSv1.3') as tls.SecureVersion;

/** One connection: resolves with its session (TLS 1.3 tickets come after the handshake) and whether it resumed. */
function connect(
  session: Buffer | undefined,
  wantSession: boolean,
): Promise<{ session?: Buffer; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      servername,
      ca,
      maxVersion,
      ...(session ? { session } : {}),
    });
    let done = false;
    const finish = (value: { session?: Buffer; reused: boolean }): void => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve(value);
    };
    socket.once('secureConnect', () => {
      if (!wantSession) finish({ reused: socket.isSessionReused() });
    });
    socket.once('session', (ticket: Buffer) => finish({ session: ticket, reused: socket.isSessionReused() }));
    socket.once('error', (error) => {
      if (!done) {
        done = true;
        reject(error);
      }
    });
  });
}

async function main(): Promise<void> {
  let handshakes = 0;
  let resumed = 0;
  let errors = 0;
  let started = 0;
  let until = 0;
  const worker = async (): Promise<void> => {
    // Resumed mode: one full handshake for a ticket, then every connection resumes with it (stateless tickets
    // may be presented again; only early data would need anti-replay).
    const session = resume ? (await connect(undefined, true)).session : undefined;
    while (performance.now() < until) {
      try {
        const answer = await connect(session, false);
        handshakes++;
        if (answer.reused) resumed++;
      } catch {
        errors++;
      }
    }
  };
  started = performance.now();
  until = started + seconds * 1000;
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - started) / 1000;
  process.stdout.write(`${JSON.stringify({ handshakes, seconds: elapsed, resumed, errors })}\n`);
}

void main();
