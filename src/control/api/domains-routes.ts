// REST routes of domains: list hosts with their certificates, add and remove domains, force a renewal, revoke.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { DomainsView, RenewResult } from '../../domain/certificate.js';
import { BerthError } from '../../domain/errors.js';
import {
  type CertificateManager,
  REVOCATION_REASONS,
  type RevocationReason,
} from '../domains/certificate-manager.js';
import type { DomainRegistry } from '../domains/domain-registry.js';
import { certificateRecord } from '../domains/domain-store.js';
import { parseInput } from './parse-input.js';

const ADMIN_ACTOR = 'admin';

const listQuery = z.strictObject({ app: z.string().optional() });
const addBody = z.strictObject({ host: z.string().min(1).max(300) });
const revokeBody = z.strictObject({
  reason: z.enum(Object.keys(REVOCATION_REASONS) as [RevocationReason, ...RevocationReason[]]).optional(),
});

type AppParams = { Params: { app: string } };
type HostParams = { Params: { app: string; host: string } };

export interface DomainsRoutesOptions {
  registry: DomainRegistry;
  /** Undefined when ACME is off. */
  certificates: CertificateManager | undefined;
  directory: string | null;
  dnsHook: boolean;
  /** Hosts changed: resolves once the proxy serves the new table (and the certificate loop has been woken). */
  changed: () => Promise<unknown>;
}

/** Registers `/v1/domains` and `/v1/apps/:app/domains…`. */
export function registerDomainsRoutes(api: FastifyInstance, options: DomainsRoutesOptions): void {
  const { registry, certificates } = options;
  const managed = (app: string, host: string): CertificateManager => {
    const owner = registry.owners().get(host);
    if (owner?.app !== app) throw new BerthError('not_found', `${host} is not a host of ${app}`);
    if (certificates === undefined)
      throw new BerthError(
        'conflict',
        'ACME is off (--acme-directory off): hosts get the local CA certificate',
      );
    return certificates;
  };

  api.get('/v1/domains', async (request): Promise<DomainsView> => {
    const query = parseInput(listQuery, request.query, 'query');
    return {
      acme: { directory: options.directory, dnsHook: options.dnsHook },
      domains: registry.list(query.app),
    };
  });

  api.post<AppParams>('/v1/apps/:app/domains', async (request, reply) => {
    const body = parseInput(addBody, request.body, 'body');
    const added = registry.add(request.params.app, body.host, ADMIN_ACTOR);
    // The host is served (with the default certificate until its own is issued) when the command returns.
    await options.changed();
    return reply.code(201).send(added);
  });

  api.delete<HostParams>('/v1/apps/:app/domains/:host', async (request) => {
    registry.remove(request.params.app, request.params.host, ADMIN_ACTOR);
    await options.changed();
    return { removed: request.params.host };
  });

  api.post<HostParams>('/v1/apps/:app/domains/:host/renew', async (request): Promise<RenewResult> => {
    const { app, host } = request.params;
    const result = await managed(app, host).renew(host);
    return { outcome: result.outcome, certificate: certificateRecord(result.certificate) };
  });

  api.post<HostParams>('/v1/apps/:app/domains/:host/revoke', async (request) => {
    const { app, host } = request.params;
    const body = parseInput(revokeBody, request.body, 'body');
    const revoked = await managed(app, host).revoke(host, body.reason ?? 'unspecified');
    return certificateRecord(revoked);
  });
}
