// Layer 3 on one real Kubernetes control plane (test/kube-server.ts): Berth's deployer driven directly
// (test/kube-deploy-suite.ts, namespace `deploys`) and Berth through its CLI and a control plane
// (test/kube-cli-suite.ts, namespace `default`), side by side. A cluster takes ~3 CPU-s and seconds to start, so the
// two suites share one as two tenants would: each in its own namespace with its own stand-in kubelet, and every read
// of Berth's and of the tests' is namespaced, so neither sees the other's Deployments, pods, events or Secrets.
import { after, describe } from 'node:test';
import { kubeCliSuite } from './kube-cli-suite.js';
import { kubeDeploySuite } from './kube-deploy-suite.js';
import { type KubeServer, requireKube, startKubeServer } from './kube-server.js';

describe('Kubernetes targets on a real API server', { skip: requireKube(), concurrency: true }, () => {
  // Started by the first suite's before() that asks, so the CLI suite starts its control plane meanwhile.
  let starting: Promise<KubeServer> | undefined;
  const kube = (): Promise<KubeServer> => {
    starting ??= startKubeServer();
    return starting;
  };

  after(async () => {
    const server = await starting?.catch(() => undefined);
    await server?.stop();
  });

  kubeDeploySuite(kube);
  kubeCliSuite(kube);
});
