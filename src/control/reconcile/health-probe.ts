// One HTTP health check of an instance: GET its health path on loopback, judged by status code, within a timeout.
import { request } from 'node:http';
import { successCodeMatcher } from '../../domain/route-table.js';

export interface ProbeResult {
  ok: boolean;
  /** Status code, or what went wrong: `timeout`, `connection refused`, ... */
  detail: string;
}

export type HealthProbe = (
  port: number,
  path: string,
  timeoutMs: number,
  successCodes: string,
) => Promise<ProbeResult>;

export const probeHttp: HealthProbe = (port, path, timeoutMs, successCodes) =>
  new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port, path, method: 'GET', agent: false, timeout: timeoutMs },
      (res) => {
        res.resume();
        const status = res.statusCode ?? 0;
        resolve({ ok: successCodeMatcher(successCodes)(status), detail: `status ${status}` });
      },
    );
    req.on('timeout', () => {
      req.destroy();
      resolve({ ok: false, detail: `timeout after ${timeoutMs}ms` });
    });
    req.on('error', (error: NodeJS.ErrnoException) => {
      resolve({
        ok: false,
        detail: error.code === 'ECONNREFUSED' ? 'connection refused' : (error.code ?? error.message),
      });
    });
    req.end();
  });
