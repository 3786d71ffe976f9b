// A bounded HTTPS load for tests: keep-alive requests through the proxy while something happens, every failure kept.
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { Agent, request } from 'node:https';
import { waitFor } from './wait.js';

/**
 * Requests counted to check a split between two weights within ±3 percentage points. The proxy splits by smooth
 * weighted round robin, between groups (src/proxy/router.ts pickGroup) and between targets (load-balancer.ts), in
 * one worker: in ANY run of n consecutive picks between two, each one's count is within 1 of n × weight / total
 * (checked for 30/70, 10/90, 1:3 and 9:1 over every window up to 600 picks). When the first n answers of a longer
 * load are counted, they differ from n consecutive picks by at most the c requests in flight (c ≤ 8), so a count is
 * within 1 + c ≤ 9 of its share: 1.8 points at n = 500 (0.2 when all n requests are counted, c = 0). No sample
 * error: the 3-point bound does not fail on a correct proxy (false-failure probability 0, under any 1e-6). Were
 * picks independent random draws, a 3-point bound under 1e-6 would need 5 sd, n ≥ 0.3 × 0.7 × (5 / 0.03)² ≈ 5800 at
 * 30 % (≈ 2500 at 10 %); the 3000 and 2000 requests the tests sent before were no sounder by that measure (3.6 and
 * 4.5 sd), the 10k ones cost ~10 CPU-s, 1000 cost twice what 500 do for a bound both meet.
 */
export const SPLIT_SAMPLE = 500;

export interface Answer {
  status: number;
  body: string;
  headers: IncomingHttpHeaders;
  /** When the request was sent and answered (epoch ms). */
  sentAt: number;
  doneAt: number;
}

export interface LoadResult {
  /** Requests sent, answered or not. */
  sent: number;
  answers: Answer[];
  failures: string[];
}

/**
 * Resolves once `count` requests sent after `since` (epoch ms) have been answered or failed: keeps a load on
 * after a cut-over long enough to see who serves then.
 */
export async function answersAfter(sofar: LoadResult, since: number, count = 20): Promise<void> {
  await waitFor(`${count} requests sent after the cut-over`, () =>
    sofar.answers.filter((a) => a.sentAt > since).length + sofar.failures.length >= count ? true : undefined,
  );
}

export class LoadClient {
  readonly #port: number;
  readonly #host: string;
  readonly #agent: Agent;

  /** Requests go to 127.0.0.1:`port` with SNI and Host `host`, trusting the CA at `caPath`. */
  constructor(port: number, host: string, caPath: string) {
    this.#port = port;
    this.#host = host;
    this.#agent = new Agent({ keepAlive: true, maxSockets: 16, ca: readFileSync(caPath) });
  }

  get(path = '/', timeoutMs = 10_000): Promise<Answer> {
    return this.send('GET', path, undefined, timeoutMs);
  }

  post(path: string, body: string, timeoutMs = 10_000): Promise<Answer> {
    return this.send('POST', path, body, timeoutMs);
  }

  send(
    method: string,
    path: string,
    body: string | undefined,
    timeoutMs = 10_000,
    headers: OutgoingHttpHeaders = {},
  ): Promise<Answer> {
    const sentAt = Date.now();
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: this.#port,
          method,
          path,
          servername: this.#host,
          headers: { ...headers, host: this.#host },
          agent: this.#agent,
          timeout: timeoutMs,
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            body += chunk;
          });
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, body, headers: res.headers, sentAt, doneAt: Date.now() }),
          );
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs}ms`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  /**
   * Sends requests on `connections` keep-alive connections while `work` runs; `work` sees the result so far (to
   * wait for answers after some moment, say). Paced to spare the CPU the rest of the suite needs: a connection
   * whose answer came back waits `pauseMs` before its next request, unless no other request is in flight then, in
   * which case it sends at once. So at every moment of `work` a request is in flight, whatever the pace.
   */
  async during(
    work: (sofar: LoadResult) => Promise<void>,
    connections = 4,
    pauseMs = 2,
  ): Promise<LoadResult> {
    let running = true;
    let inFlight = 0;
    const result: LoadResult = { sent: 0, answers: [], failures: [] };
    const workers = Array.from({ length: connections }, async () => {
      while (running) {
        result.sent++;
        inFlight++;
        try {
          const answer = await this.get();
          result.answers.push(answer);
          if (answer.status !== 200) result.failures.push(`${answer.status} ${answer.body.slice(0, 200)}`);
        } catch (error) {
          result.failures.push(String(error));
        } finally {
          inFlight--;
        }
        if (inFlight > 0 && pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
      }
    });
    try {
      await work(result);
    } finally {
      running = false;
      await Promise.all(workers);
    }
    return result;
  }

  close(): void {
    this.#agent.destroy();
  }
}
