// The proxy's listener ports when none is given: a module of its own so the keeper reads them without loading the
// proxy engine (and the route table's schemas) it never runs itself.
export const DEFAULT_PORTS = { http: 8080, https: 8443 } as const;
