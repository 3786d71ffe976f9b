// Every object Berth writes is checked against the Kubernetes OpenAPI schema (kubernetes-models) before it is sent.
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler as HorizontalPodAutoscalerV2 } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { HorizontalPodAutoscaler as HorizontalPodAutoscalerV2beta2 } from 'kubernetes-models/autoscaling/v2beta2/HorizontalPodAutoscaler';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1/Ingress';
import { PodDisruptionBudget as PodDisruptionBudgetV1 } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { PodDisruptionBudget as PodDisruptionBudgetV1beta1 } from 'kubernetes-models/policy/v1beta1/PodDisruptionBudget';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { BerthError, type Issue } from '../../domain/errors.js';
import type { KubeObject } from './kube-manifests.js';

interface Model {
  validate(): void;
}

/** The model of each `apiVersion kind` Berth writes. */
const MODELS: Record<string, (object: KubeObject) => Model> = {
  'v1 Secret': (o) => new Secret(o as never),
  'v1 Service': (o) => new Service(o as never),
  'apps/v1 Deployment': (o) => new Deployment(o as never),
  'networking.k8s.io/v1 Ingress': (o) => new Ingress(o as never),
  'autoscaling/v2 HorizontalPodAutoscaler': (o) => new HorizontalPodAutoscalerV2(o as never),
  'autoscaling/v2beta2 HorizontalPodAutoscaler': (o) => new HorizontalPodAutoscalerV2beta2(o as never),
  'policy/v1 PodDisruptionBudget': (o) => new PodDisruptionBudgetV1(o as never),
  'policy/v1beta1 PodDisruptionBudget': (o) => new PodDisruptionBudgetV1beta1(o as never),
};

/** Object names: DNS-1123 labels, which also fit Services (the strictest kind Berth writes). */
const NAME = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** What the schema said about one object, one issue per failing field: `Deployment shop-web` `/spec/replicas`. */
export function validationIssues(object: KubeObject): Issue[] {
  const subject = `${object.kind} ${object.metadata.name}`;
  const issues: Issue[] = [];
  if (!NAME.test(object.metadata.name)) {
    issues.push({
      path: subject,
      message: 'the name must be at most 63 lowercase letters, digits and dashes, starting with a letter',
    });
  }
  const model = MODELS[`${object.apiVersion} ${object.kind}`];
  if (model === undefined) {
    issues.push({ path: subject, message: `Berth has no schema for ${object.apiVersion} ${object.kind}` });
    return issues;
  }
  try {
    model(object).validate();
  } catch (error) {
    const errors = (error as { errors?: { instancePath?: string; message?: string }[] }).errors;
    if (errors === undefined) throw error;
    for (const e of errors)
      issues.push({ path: `${subject} ${e.instancePath || '/'}`, message: e.message ?? 'is invalid' });
  }
  return issues;
}

/**
 * Refuses the whole set when any object fails its schema (`invalid_spec`, one issue per field), so nothing is sent
 * of a set that the API server would refuse in part.
 */
export function validateManifests(objects: readonly KubeObject[]): void {
  const issues = objects.flatMap(validationIssues);
  if (issues.length > 0) {
    throw new BerthError(
      'invalid_spec',
      `the Kubernetes objects fail their schema (${issues.length} problem${issues.length === 1 ? '' : 's'})`,
      { issues },
    );
  }
}
