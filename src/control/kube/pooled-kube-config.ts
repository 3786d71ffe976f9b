// A kubeconfig whose API calls share kept-alive connections: @kubernetes/client-node 1.4 gives every call a new
// https.Agent, so each one paid a TLS handshake on both sides (a rollout's watch makes three calls a poll).
import { Agent } from 'node:https';
import { KubeConfig, type RequestContext } from '@kubernetes/client-node';

/**
 * What makes two agents' connections interchangeable: the server's trust and the client's identity, by content
 * (the client reads the files again for every call).
 */
function identity(agent: Agent): string {
  const o = agent.options;
  return JSON.stringify([o.ca, o.cert, o.key, o.pfx, o.passphrase, o.rejectUnauthorized, o.servername]);
}

/** Idle connections are closed by the client before the API server's 90 s idle timeout can close them. */
const IDLE_MS = 60_000;

export class PooledKubeConfig extends KubeConfig {
  #agent: Agent | undefined;
  #identity = '';

  /**
   * The client's own agent for the call, swapped for one kept-alive agent made with the same options; a new one
   * when they change (an exec plugin's renewed client certificate), the old one left to its calls in flight. Idle
   * connections do not keep a process alive (Node unrefs them). The API server closes a connection after 90 s idle;
   * a call sent on it just then would fail with a reset, so the agent drops its idle connections first, at 60 s
   * (`timeout` ends only idle ones: a call in flight gets the event, which nothing here turns into an error).
   */
  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const made = context.getAgent();
    // Plain HTTP or a proxy's agent: as the client made it.
    if (made?.constructor !== Agent) return;
    const now = identity(made as Agent);
    if (this.#agent === undefined || now !== this.#identity) {
      this.#agent = new Agent({ ...(made as Agent).options, keepAlive: true, timeout: IDLE_MS });
      this.#identity = now;
    }
    context.setAgent(this.#agent);
  }
}
