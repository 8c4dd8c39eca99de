// Validate rendered custom-kind objects against the compiled validators of @kubernetes-models.
//
//   kubectl kustomize kustomize/overlays/dev | yq -o=json -s . | node manifests/schemas/validate.mjs
//
// stdin: a JSON array of Kubernetes objects. stdout: {"objects": [{apiVersion, kind, name, valid, errors}],
// "unvalidated_kinds": ["<apiVersion> <kind>", ...]}. Exit 0 when every object of a known kind is valid,
// 1 when one is not, 2 when the input or the installation is unusable.
import { existsSync, readFileSync } from "node:fs";

// apiVersion -> the package folder whose `<Kind>.js` exports that kind's model class. Each class's
// validate() runs the ajv validator compiled from the project's Go API types (see README.md).
const MODULES_BY_API_VERSION = {
  "monitoring.coreos.com/v1": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1",
  "monitoring.coreos.com/v1alpha1": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1alpha1",
  "monitoring.coreos.com/v1beta1": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1beta1",
  "argoproj.io/v1alpha1": "@kubernetes-models/argo-cd/argoproj.io/v1alpha1",
  "serving.knative.dev/v1": "@kubernetes-models/knative/serving.knative.dev/v1",
  "eventing.knative.dev/v1": "@kubernetes-models/knative/eventing.knative.dev/v1",
  "messaging.knative.dev/v1": "@kubernetes-models/knative/messaging.knative.dev/v1",
  "sources.knative.dev/v1": "@kubernetes-models/knative/sources.knative.dev/v1",
  "flows.knative.dev/v1": "@kubernetes-models/knative/flows.knative.dev/v1",
};
// Kind names become a module path; anything else could walk out of the package.
const KIND_PATTERN = /^[A-Z][A-Za-z0-9]*$/;

class UsageError extends Error {}

function checkInstalled() {
  const marker = new URL("./node_modules/@kubernetes-models/base/package.json", import.meta.url);
  if (!existsSync(marker)) {
    throw new UsageError("manifests/schemas/node_modules is missing: run `make install`");
  }
}

function readObjects() {
  let objects;
  try {
    objects = JSON.parse(readFileSync(0, "utf8"));
  } catch (error) {
    throw new UsageError(`stdin is not JSON: ${error.message}`);
  }
  if (!Array.isArray(objects)) {
    throw new UsageError("stdin must be a JSON array of Kubernetes objects");
  }
  const bad = objects.findIndex((obj) => obj === null || typeof obj !== "object" || Array.isArray(obj));
  if (bad !== -1) throw new UsageError(`stdin[${bad}] is not a Kubernetes object`);
  return objects;
}

// The model class for apiVersion/kind, or null when no package here has a schema for it.
async function modelFor(apiVersion, kind) {
  const folder = MODULES_BY_API_VERSION[apiVersion];
  if (!folder || !KIND_PATTERN.test(kind ?? "")) return null;
  let module;
  try {
    module = await import(`${folder}/${kind}`);
  } catch (error) {
    if (error.code === "ERR_MODULE_NOT_FOUND" || error.code === "ERR_PACKAGE_PATH_NOT_EXPORTED") return null;
    throw error;
  }
  const model = module[kind];
  // Helper types (Duration, Rule) live beside the kinds; only top-level kinds carry a static kind.
  return model && model.kind === kind && model.apiVersion === apiVersion ? model : null;
}

function describeErrors(error) {
  if (!Array.isArray(error.errors)) return [String(error.message ?? error)];
  const lines = error.errors.map((e) => {
    const detail = e.params?.allowedValues ? ` (${e.params.allowedValues.join(", ")})` : "";
    return `${e.instancePath || "/"}: ${e.message ?? e.keyword}${detail}`;
  });
  return [...new Set(lines)];
}

function validateOne(model, obj) {
  try {
    new model(obj).validate();
    return [];
  } catch (error) {
    return describeErrors(error);
  }
}

async function validateAll(objects) {
  const report = [];
  const unvalidated = new Set();
  for (const obj of objects) {
    const { apiVersion, kind } = obj;
    const model = await modelFor(apiVersion, kind);
    if (!model) {
      unvalidated.add(`${apiVersion} ${kind}`);
      continue;
    }
    const errors = validateOne(model, obj);
    const name = obj.metadata?.name ?? null;
    report.push({ apiVersion, kind, name, valid: errors.length === 0, errors });
  }
  return { objects: report, unvalidated_kinds: [...unvalidated].sort() };
}

async function main() {
  try {
    checkInstalled();
    const result = await validateAll(readObjects());
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return result.objects.every((entry) => entry.valid) ? 0 : 1;
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`validate.mjs: ${error.message}\n`);
    return 2;
  }
}

process.exitCode = await main();
