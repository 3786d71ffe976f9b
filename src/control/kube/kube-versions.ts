// Which API version of each kind Berth writes for a given Kubernetes server: from discovery, or from a version number.
import { BerthError } from '../../domain/errors.js';

/** The API versions of the kinds whose version depends on the server, and what its pods support. */
export interface KubeApiVersions {
  /** The server's `major.minor`, e.g. `1.20`. */
  server: string;
  /** `autoscaling/v2` (1.23+) or `autoscaling/v2beta2` (1.12–1.25). */
  horizontalPodAutoscaler: 'autoscaling/v2' | 'autoscaling/v2beta2';
  /** `policy/v1` (1.21+) or `policy/v1beta1` (up to 1.24). */
  podDisruptionBudget: 'policy/v1' | 'policy/v1beta1';
  /** A preStop `sleep` action (1.30+, on by default); before it, `exec: sleep N`, which needs `sleep` in the image. */
  preStopSleepAction: boolean;
}

/** The oldest server Berth writes for: `networking.k8s.io/v1` Ingress and `pathType` arrived in 1.19. */
export const OLDEST_SUPPORTED = { major: 1, minor: 19 };

/** What `--kube-version` assumes when it is not given: a current server. */
export const LATEST_KNOWN = '1.33';

/** `1.20`, `v1.20.2`, `1.20+` (GKE, EKS) → `{ major: 1, minor: 20 }`. */
export function parseKubeVersion(text: string): { major: number; minor: number } {
  const match = /^v?(\d+)\.(\d+)(?:\D.*)?$/.exec(text.trim());
  if (match === null)
    throw new BerthError('invalid_request', `${text}: expected a Kubernetes version such as 1.20 or v1.29.3`);
  const version = { major: Number(match[1]), minor: Number(match[2]) };
  if (
    version.major < OLDEST_SUPPORTED.major ||
    (version.major === OLDEST_SUPPORTED.major && version.minor < OLDEST_SUPPORTED.minor)
  ) {
    throw new BerthError(
      'invalid_request',
      `Kubernetes ${version.major}.${version.minor} is too old: Berth needs ${OLDEST_SUPPORTED.major}.${OLDEST_SUPPORTED.minor} or later (networking.k8s.io/v1 Ingress)`,
    );
  }
  return version;
}

/** The versions a server of `version` serves, from its version number alone (`berth export k8s --kube-version`). */
export function apiVersionsFor(version: string): KubeApiVersions {
  const { major, minor } = parseKubeVersion(version);
  const atLeast = (m: number): boolean => major > 1 || minor >= m;
  return {
    server: `${major}.${minor}`,
    horizontalPodAutoscaler: atLeast(23) ? 'autoscaling/v2' : 'autoscaling/v2beta2',
    podDisruptionBudget: atLeast(21) ? 'policy/v1' : 'policy/v1beta1',
    preStopSleepAction: atLeast(30),
  };
}

/**
 * The versions a server serves, from its discovery (`GET /apis`: every `group/version` it serves) and its version:
 * the newest of each that it lists, so a cluster with a version turned off is still written for correctly.
 */
export function apiVersionsFromDiscovery(version: string, served: ReadonlySet<string>): KubeApiVersions {
  const byNumber = apiVersionsFor(version);
  const pick = <V extends string>(preferred: V, older: V, kind: string): V => {
    if (served.has(preferred)) return preferred;
    if (served.has(older)) return older;
    throw new BerthError(
      'runtime_failure',
      `the cluster (Kubernetes ${byNumber.server}) serves neither ${preferred} nor ${older}, which Berth needs for ${kind}`,
    );
  };
  return {
    ...byNumber,
    horizontalPodAutoscaler: pick('autoscaling/v2', 'autoscaling/v2beta2', 'HorizontalPodAutoscalers'),
    podDisruptionBudget: pick('policy/v1', 'policy/v1beta1', 'PodDisruptionBudgets'),
  };
}
