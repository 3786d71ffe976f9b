// Which host names an app may claim, and the reason given for each refusal.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hostNameProblem, isLocalHost, isWildcard } from './host-name.js';

describe('hostNameProblem', () => {
  it('accepts DNS names, wildcards as a whole first label, and every .localhost name', () => {
    for (const host of [
      'api.example.com',
      'a-b.c0.example.co.uk',
      'xn--bcher-kva.example.org',
      '*.example.com',
      '*.api.example.com',
      'shop.localhost',
      '*.shop.localhost',
      'localhost',
      `${'a'.repeat(63)}.example.com`,
    ]) {
      assert.equal(hostNameProblem(host), undefined, host);
    }
  });

  it('refuses what no CA would issue for, or is not a host name, naming why', () => {
    const cases: [string, RegExp][] = [
      ['', /empty/],
      ['203.0.113.7', /an IP address/],
      ['[2001:db8::1]', /an IP address/],
      ['2001:db8::1', /an IP address/],
      ['Api.Example.com', /lower case/],
      ['api.example.com:443', /no scheme, port or path/],
      ['https://api.example.com', /no scheme, port or path/],
      ['api.example.com/x', /no scheme, port or path/],
      ['a..example.com', /empty label/],
      ['api.example.com.', /empty label/],
      ['-api.example.com', /not at its start or end/],
      ['api_v2.example.com', /only letters, digits and dashes/],
      ['café.example.com', /only letters, digits and dashes/],
      [`${'a'.repeat(64)}.example.com`, /longer than 63/],
      [`${'abcdefghi.'.repeat(26)}com`, /longer than 253/],
      ['api.*.example.com', /whole first label/],
      ['**.example.com', /label "\*\*" may hold only letters/],
      ['*.com', /two labels under it/],
      ['intranet', /single label/],
      ['shop.test', /\.test is reserved for testing/],
      ['www.example', /\.example is reserved for documentation/],
      ['printer.local', /multicast DNS/],
      ['x.onion', /Tor/],
      ['db.internal', /private networks/],
      ['1.0.0.127.in-addr.arpa', /infrastructure/],
      ['host.123', /all digits/],
    ];
    for (const [host, reason] of cases) assert.match(hostNameProblem(host) ?? 'accepted', reason, host);
  });
});

describe('isLocalHost / isWildcard', () => {
  it('tells .localhost names (the local CA) from the rest, wildcards included', () => {
    assert.equal(isLocalHost('localhost'), true);
    assert.equal(isLocalHost('*.shop.localhost'), true);
    assert.equal(isLocalHost('localhost.example.com'), false);
    assert.equal(isLocalHost('notlocalhost'), false);
    assert.equal(isWildcard('*.example.com'), true);
    assert.equal(isWildcard('example.com'), false);
  });
});
