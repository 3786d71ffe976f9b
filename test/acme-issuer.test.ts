// Integration: the ACME client against pebble, in this process: external account binding, and every failure
// reported with the CA's problem document (or a local one naming the cause), never a bare message.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import acme from 'acme-client';
import {
  AcmeFailure,
  AcmeIssuer,
  type ChallengeSolver,
  newKeyPem,
} from '../src/control/domains/acme-issuer.js';
import { tempDir } from './control-harness.js';
import { freePort, type Pebble, pebbleUnavailable, preparePebble, startPebble } from './pebble-harness.js';

// pebble's example MAC keys (base64url, 48 bytes).
const EAB = {
  'kid-1': 'zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W',
  'kid-2': 'b10lLJs8l1GPIzsLP0s6pMt8O0XVGnfTaCeROxQM0BIt2XrJMDHJZBM5NuQmQJQH',
};

function issuer(
  directoryUrl: string,
  eab?: { kid: string; hmacKey: string },
  saved: { url?: string } = {},
): AcmeIssuer {
  const key = newKeyPem();
  return new AcmeIssuer({
    config: { directoryUrl, ...(eab === undefined ? {} : { eab }) },
    accountKey: () => key,
    accountUrl: () => saved.url,
    saveAccount: (url) => {
      saved.url = url;
    },
    poll: { minMs: 100, maxMs: 1000, attempts: 20 },
  });
}

async function failure(promise: Promise<unknown>): Promise<AcmeFailure> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof AcmeFailure, `an AcmeFailure, got ${String(error)}`);
    return error;
  }
  assert.fail('expected a failure');
}

describe('the ACME client against pebble (external account binding required)', {
  skip: pebbleUnavailable,
}, () => {
  let pebble: Pebble;

  before(async () => {
    const setup = await preparePebble(join(tempDir('berth-acme-issuer-'), 'pebble'));
    // This process talks to pebble's listener: trust its certificate (the control plane uses NODE_EXTRA_CA_CERTS).
    acme.axios.defaults.httpsAgent = new https.Agent({ ca: readFileSync(setup.listenerCaFile) });
    pebble = await startPebble(setup, { httpPort: await freePort(), eab: EAB });
  });

  after(async () => {
    await pebble?.stop();
  });

  it('registers an account with external account binding', async () => {
    const url = await issuer(pebble.directory, { kid: 'kid-1', hmacKey: EAB['kid-1'] }).register();
    assert.match(url, /^https:\/\/127\.0\.0\.1:\d+\/my-account\//);
  });

  it("shows the CA's problem document when the account has no binding, or a wrong one", async () => {
    const missing = await failure(issuer(pebble.directory).register());
    assert.equal(missing.problem.type, 'urn:ietf:params:acme:error:externalAccountRequired');
    assert.equal(missing.problem.status, 403);
    assert.match(missing.problem.detail, /externalAccountBinding/);
    const wrong = await failure(issuer(pebble.directory, { kid: 'kid-1', hmacKey: EAB['kid-2'] }).register());
    assert.match(wrong.problem.type, /^urn:ietf:params:acme:error:(unauthorized|malformed)$/);
    assert.ok(wrong.problem.detail.length > 0);
  });

  it("shows the CA's refusal of an identifier as its problem document, before any challenge", async () => {
    const solver: ChallengeSolver = {
      present: async () => assert.fail('no challenge for a refused identifier'),
      withdraw: async () => {},
    };
    const client = issuer(pebble.directory, { kid: 'kid-2', hmacKey: EAB['kid-2'] });
    const refused = await failure(client.order('127.0.0.1', 'http-01', solver));
    assert.match(refused.problem.type, /^urn:ietf:params:acme:error:(rejectedIdentifier|malformed)$/);
    assert.equal(refused.problem.status, 400);
  });

  it('registers again when the CA does not know the recorded account (a CA reset), then goes on', async () => {
    const gone = `${new URL(pebble.directory).origin}/my-account/0123456789abcdef`;
    const saved: { url?: string } = { url: gone };
    const solver: ChallengeSolver = {
      present: async () => assert.fail('no challenge for a refused identifier'),
      withdraw: async () => {},
    };
    const client = issuer(pebble.directory, { kid: 'kid-1', hmacKey: EAB['kid-1'] }, saved);
    // The order goes through a new registration to the CA's own refusal of the identifier.
    const refused = await failure(client.order('127.0.0.1', 'http-01', solver));
    assert.match(refused.problem.type, /^urn:ietf:params:acme:error:(rejectedIdentifier|malformed)$/);
    assert.notEqual(saved.url, gone);
    assert.match(saved.url ?? '', /\/my-account\//);
  });

  it('names an unreachable CA and the cause at once, without retrying inside the attempt', async () => {
    const started = Date.now();
    const down = await failure(issuer(`https://127.0.0.1:${await freePort()}/dir`).register());
    assert.equal(down.problem.type, 'berth:unreachable');
    assert.match(
      down.problem.detail,
      /^cannot reach the CA at https:\/\/127\.0\.0\.1:\d+\/dir: .*ECONNREFUSED/,
    );
    assert.ok(Date.now() - started < 3000, 'no retry with a backoff of seconds');
  });
});
