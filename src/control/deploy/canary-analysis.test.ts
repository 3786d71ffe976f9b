import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { describe, it } from 'node:test';
import type { CounterSnapshot } from '../../domain/deployment.js';
import { DEFAULT_CANARY_ANALYSIS } from '../../domain/spec-defaults.js';
import { bucketIndex } from '../metrics/latency.js';
import { judgeCanary, releaseWindow, runCheck } from './canary-analysis.js';

/** A target's counters: `requests` of which `errors` 5xx (`gateway` of them the proxy's 502-504), all at `ms`. */
function snap(requests: number, errors = 0, gateway = 0, ms = 5): CounterSnapshot {
  return {
    requests,
    errors5xx: errors,
    gateway,
    latency: requests === 0 ? {} : { [bucketIndex(ms)]: requests },
  };
}

const analysis = { ...DEFAULT_CANARY_ANALYSIS, minRequests: 50 };

describe('releaseWindow', () => {
  it('sums the increments of every target since the window opened; a new or reset target counts from zero', () => {
    const window = releaseWindow(7, [
      { now: snap(150, 3), before: snap(100, 1) },
      { now: snap(20, 2), before: undefined },
      { now: snap(5), before: snap(900, 9) },
    ]);
    assert.equal(window.requests, 50 + 20 + 5);
    assert.equal(window.errors5xx, 2 + 2);
    assert.equal(Number(window.errorRatePercent.toFixed(2)), Number(((100 * 4) / 75).toFixed(2)));
    assert.ok(window.p99Ms !== null && window.p99Ms >= 4.7 && window.p99Ms <= 5.3);
  });
});

describe('judgeCanary', () => {
  const baseline = releaseWindow(6, [{ now: snap(1000, 2), before: undefined }]);

  it('holds, never passes, below the minimum sample size', () => {
    const canary = releaseWindow(7, [{ now: snap(49), before: undefined }]);
    const decision = judgeCanary(analysis, canary, baseline);
    assert.equal(decision.verdict, 'hold');
    assert.deepEqual(decision.reasons, ['not enough requests yet: 49 of the 50 a verdict needs']);
  });

  it('promotes a canary as good as the old release, with the numbers of each check', () => {
    const decision = judgeCanary(
      analysis,
      releaseWindow(7, [{ now: snap(100), before: undefined }]),
      baseline,
    );
    assert.equal(decision.verdict, 'promote');
    assert.ok(decision.reasons.includes('5xx 0% (limit 5%)'));
    assert.ok(decision.reasons.includes('5xx 0% vs old 0.2% (limit 1.2%)'));
  });

  it('aborts on the absolute 5xx ceiling and on the rise over the old release', () => {
    const bad = judgeCanary(
      analysis,
      releaseWindow(7, [{ now: snap(100, 20), before: undefined }]),
      baseline,
    );
    assert.equal(bad.verdict, 'abort');
    assert.deepEqual(bad.reasons, ['5xx 20% (limit 5%)', '5xx 20% vs old 0.2% (limit 1.2%)']);
    const worse = judgeCanary(
      analysis,
      releaseWindow(7, [{ now: snap(100, 2), before: undefined }]),
      baseline,
    );
    assert.deepEqual(worse.reasons, ['5xx 2% vs old 0.2% (limit 1.2%)']);
  });

  it("aborts on 502-504 beyond the old release's rate, and on latency over the ratio (above a 10 ms floor)", () => {
    const gateway = judgeCanary(
      analysis,
      releaseWindow(7, [{ now: snap(100, 1, 1), before: undefined }]),
      baseline,
    );
    assert.deepEqual(gateway.reasons, ['502-504 1 (limit 0)']);
    const slow = judgeCanary(
      analysis,
      releaseWindow(7, [{ now: snap(100, 0, 0, 50), before: undefined }]),
      baseline,
    );
    assert.equal(slow.verdict, 'abort');
    assert.match(slow.reasons.join('\n'), /^p99 \d+(\.\d)?ms vs old \d(\.\d)?ms \(limit 20ms\)$/m);
  });

  it('judges by the absolute ceilings alone when the old release served too few requests to compare with', () => {
    const quiet = releaseWindow(6, [{ now: snap(3, 0), before: undefined }]);
    const decision = judgeCanary(
      { ...analysis, maxP99Ms: 20 },
      releaseWindow(7, [{ now: snap(100, 2, 0, 50), before: undefined }]),
      quiet,
    );
    assert.equal(decision.verdict, 'abort');
    assert.deepEqual(decision.reasons.filter((r) => r.includes('limit 20ms')).length, 1);
  });
});

describe("the user's check", () => {
  it('aborts on a failed check whatever the numbers, and names it among the passes otherwise', () => {
    const baseline = releaseWindow(6, [{ now: snap(1000), before: undefined }]);
    const few = releaseWindow(7, [{ now: snap(3), before: undefined }]);
    const failed = judgeCanary(analysis, few, baseline, 'check http://x/ answered 503');
    assert.deepEqual(failed, { verdict: 'abort', reasons: ['check http://x/ answered 503'] });
    const good = releaseWindow(7, [{ now: snap(100), before: undefined }]);
    const passed = judgeCanary({ ...analysis, check: 'http://x/' }, good, baseline, null);
    assert.equal(passed.verdict, 'promote');
    assert.ok(passed.reasons.includes('check http://x/ answered 2xx'));
  });

  it('runs the check against a real server: 2xx passes, anything else or no answer fails with the reason', async () => {
    let status = 200;
    const server = createServer((_req, res) => {
      res.writeHead(status);
      res.end();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as { port: number };
    try {
      const url = `http://127.0.0.1:${port}/deep`;
      assert.equal(await runCheck(url), null);
      status = 503;
      assert.equal(await runCheck(url), `check ${url} answered 503`);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    assert.match(
      (await runCheck(`http://127.0.0.1:${port}/`)) ?? '',
      /^check http:\/\/127\.0\.0\.1:\d+\/ failed: \S/,
    );
  });
});
