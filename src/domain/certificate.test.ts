// When a managed certificate is renewed, how failures back off, and RFC 9773's certificate identifier.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ariCertId, hostFileName, renewalTime, renewalTimeInWindow, retryDelay } from './certificate.js';

const DAY = 86_400_000;

describe('renewalTime', () => {
  it('is two thirds into the lifetime: day 60 of a 90-day certificate, 8 s into a 12 s one', () => {
    assert.equal(renewalTime(0, 90 * DAY), 60 * DAY);
    assert.equal(renewalTime(1_000, 13_000), 9_000);
  });
});

describe('renewalTimeInWindow (ARI)', () => {
  it("is a time inside the CA's window, spread by the random draw", () => {
    assert.equal(renewalTimeInWindow(100, 200, 0, 0), 100);
    assert.equal(renewalTimeInWindow(100, 200, 0, 0.5), 150);
    assert.ok(renewalTimeInWindow(100, 200, 0, 0.999) < 200);
  });

  it('starts from now when the window has begun, and is now when it has passed', () => {
    assert.equal(renewalTimeInWindow(100, 200, 150, 0), 150);
    assert.equal(renewalTimeInWindow(100, 200, 150, 0.5), 175);
    assert.equal(renewalTimeInWindow(100, 200, 300, 0.5), 300);
  });
});

describe('retryDelay', () => {
  it('doubles from the first delay and stops at the maximum', () => {
    const retry = { initialMs: 60_000, maxMs: 6 * 3_600_000 };
    assert.deepEqual(
      [0, 1, 2, 3, 4].map((n) => retryDelay(n, retry)),
      [0, 60_000, 120_000, 240_000, 480_000],
    );
    assert.equal(retryDelay(9, retry), 256 * 60_000);
    assert.equal(retryDelay(10, retry), 6 * 3_600_000);
    assert.equal(retryDelay(1_000, retry), 6 * 3_600_000);
  });
});

describe('ariCertId', () => {
  it("is RFC 9773's example: base64url(keyIdentifier).base64url(serial)", () => {
    // RFC 9773 §4.1: keyIdentifier 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4,
    // serial 00:87:65:43:21 (a leading zero: the high bit of 0x87 is set).
    const keyId = Buffer.from('69885B6B87464041E1B37B847BA0AE2CDE01C8D4', 'hex');
    const serial = Buffer.from('0087654321', 'hex');
    assert.equal(ariCertId(keyId, serial), 'aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE');
  });
});

describe('hostFileName', () => {
  it('spells a wildcard without a glob character', () => {
    assert.equal(hostFileName('*.example.com'), '_wildcard.example.com');
    assert.equal(hostFileName('api.example.com'), 'api.example.com');
  });
});
