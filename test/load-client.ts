// A bounded HTTPS load for tests: keep-alive requests through the proxy while something happens, every failure kept.
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';

export interface Answer {
  status: number;
  body: string;
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
    const sentAt = Date.now();
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: this.#port,
          path,
          servername: this.#host,
          headers: { host: this.#host },
          agent: this.#agent,
          timeout: timeoutMs,
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            body += chunk;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body, sentAt, doneAt: Date.now() }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs}ms`)));
      req.on('error', reject);
      req.end();
    });
  }

  /** Sends requests back to back on `connections` keep-alive connections while `during` runs. */
  async during(work: () => Promise<void>, connections = 4): Promise<LoadResult> {
    let running = true;
    let sent = 0;
    const answers: Answer[] = [];
    const failures: string[] = [];
    const workers = Array.from({ length: connections }, async () => {
      while (running) {
        sent++;
        try {
          const answer = await this.get();
          answers.push(answer);
          if (answer.status !== 200) failures.push(`${answer.status} ${answer.body.slice(0, 200)}`);
        } catch (error) {
          failures.push(String(error));
        }
      }
    });
    try {
      await work();
    } finally {
      running = false;
      await Promise.all(workers);
    }
    return { sent, answers, failures };
  }

  close(): void {
    this.#agent.destroy();
  }
}
