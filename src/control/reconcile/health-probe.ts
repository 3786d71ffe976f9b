// One HTTP health check of an instance: GET its health path on loopback, judged by status code, within a timeout.
import { request } from 'node:http';

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

/** True when `status` is in a list such as `200-399` or `200,204,300-302`. */
export function statusMatches(successCodes: string, status: number): boolean {
  return successCodes.split(',').some((part) => {
    const [low, high] = part.trim().split('-').map(Number);
    return high === undefined ? status === low : status >= (low ?? 0) && status <= high;
  });
}

export const probeHttp: HealthProbe = (port, path, timeoutMs, successCodes) =>
  new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port, path, method: 'GET', agent: false, timeout: timeoutMs },
      (res) => {
        res.resume();
        const status = res.statusCode ?? 0;
        resolve({ ok: statusMatches(successCodes, status), detail: `status ${status}` });
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
