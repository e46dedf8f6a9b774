"""deploy/: the Kubernetes manifests are valid against the Kubernetes JSON schemas (offline, the
`kubernetes-validate` package; the CloudNativePG `Cluster` against the subset schema in
deploy/k8s/schemas/), hang together, and run the API as the issue asks; the compose file and the
collector config parse and wire up; the Dockerfile is multi-stage, locked and non-root; every
setting they use exists and every setting is documented in the README."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from service.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.30.0"
CLUSTER_SCHEMA = K8S / "schemas" / "postgresql.cnpg.io_v1_cluster.json"
CLUSTER_SCOPED = {"Namespace"}
# Made by the CloudNativePG operator for the Cluster: the application role's connection.
OPERATOR_SECRETS = {"opsledger-db-app"}


def render(directory: Path = K8S) -> list[dict[str, Any]]:
    """What `kustomize build` makes of the kustomization's features used here: resources, a
    namespace, common labels (not on selectors) and image overrides."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert set(kustomization) <= {"apiVersion", "kind", "namespace", "labels", "resources",
                                  "images"}, "a kustomize feature this renderer does not know"
    images = {i["name"]: f"{i.get('newName', i['name'])}:{i['newTag']}"
              for i in kustomization.get("images", [])}
    labels: dict[str, str] = {}
    for entry in kustomization.get("labels", []):
        assert not entry.get("includeSelectors")
        labels.update(entry["pairs"])
    objects = []
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((directory / name).read_text()):
            if not doc:
                continue
            doc = copy.deepcopy(doc)
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = kustomization["namespace"]
            doc["metadata"].setdefault("labels", {}).update(labels)
            for container in containers(doc):
                base = container["image"].split(":")[0]
                if base in images:
                    container["image"] = images[base]
            objects.append(doc)
    return objects


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    template = obj.get("spec", {}).get("template")
    return template["spec"] if template else None


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(obj)
    if spec is None:
        return []
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


OBJECTS = render()


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_every_manifest_is_valid_against_its_schema(obj: dict[str, Any]) -> None:
    if obj["apiVersion"].startswith("postgresql.cnpg.io/"):
        schema = json.loads(CLUSTER_SCHEMA.read_text())
        jsonschema.validate(obj, schema)
        return
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_validators_catch_mistakes() -> None:
    hpa = copy.deepcopy(by_kind(OBJECTS, "HorizontalPodAutoscaler")["opsledger-api"])
    hpa["spec"]["minReplica"] = 2  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(hpa, KUBERNETES_VERSION, strict=True)
    cluster = copy.deepcopy(by_kind(OBJECTS, "Cluster")["opsledger-db"])
    cluster["spec"]["instance"] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(cluster, json.loads(CLUSTER_SCHEMA.read_text()))


def test_the_api_is_a_probed_autoscaled_deployment_and_the_worker_has_a_standby() -> None:
    deployments = by_kind(OBJECTS, "Deployment")
    api = deployments["opsledger-api"]
    [container] = pod_spec(api)["containers"]  # type: ignore[index]
    assert container["args"][:2] == ["serve", "--no-projector"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    hpa = by_kind(OBJECTS, "HorizontalPodAutoscaler")["opsledger-api"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "opsledger-api"}
    assert hpa["spec"]["minReplicas"] >= 2
    worker = deployments["opsledger-worker"]
    assert worker["spec"]["replicas"] == 2
    assert pod_spec(worker)["containers"][0]["args"] == ["worker"]  # type: ignore[index]
    assert by_kind(OBJECTS, "Cluster")["opsledger-db"]["kind"] == "Cluster"
    assert "nats" in by_kind(OBJECTS, "StatefulSet")
    secret = by_kind(OBJECTS, "Secret")["opsledger-secrets"]
    assert {"OPSLEDGER_JWT_SECRET", "OPSLEDGER_SIGNING_KEY"} <= set(secret["stringData"])


def test_every_container_has_resources_and_runs_unprivileged() -> None:
    for obj in OBJECTS:
        spec = pod_spec(obj)
        if spec is None:
            continue
        assert spec["securityContext"]["runAsNonRoot"] is True, obj["metadata"]["name"]
        assert spec.get("automountServiceAccountToken") is False
        for container in containers(obj):
            assert container["resources"]["requests"], container["name"]
            assert "memory" in container["resources"]["limits"], container["name"]
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["capabilities"]["drop"] == ["ALL"]


def test_references_between_manifests_resolve() -> None:
    names = {(o["kind"], o["metadata"]["name"]) for o in OBJECTS}
    for obj in OBJECTS:
        for container in containers(obj):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert ("ConfigMap", source["configMapRef"]["name"]) in names
                if "secretRef" in source:
                    assert ("Secret", source["secretRef"]["name"]) in names
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ("Secret", ref["name"]) in names or ref["name"] in OPERATOR_SECRETS
            ports = {p["name"] for p in container.get("ports", [])}
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                if probe in container:
                    assert container[probe]["httpGet"]["port"] in ports
    workloads = [o for o in OBJECTS if pod_spec(o) is not None]
    for selector_owner in [*by_kind(OBJECTS, "Service").values(),
                           *by_kind(OBJECTS, "PodDisruptionBudget").values()]:
        spec = selector_owner["spec"]
        selector = spec["selector"].get("matchLabels", spec["selector"])
        matched = [w for w in workloads if selector.items()
                   <= w["spec"]["template"]["metadata"]["labels"].items()]
        assert matched, f"{selector_owner['kind']} {selector_owner['metadata']['name']}"
    for workload in workloads:
        assert workload["spec"]["selector"]["matchLabels"].items() \
            <= workload["spec"]["template"]["metadata"]["labels"].items()
    # The operator names its services and secrets after the Cluster.
    assert "opsledger-db" in by_kind(OBJECTS, "Cluster")
    config = by_kind(OBJECTS, "ConfigMap")["opsledger-config"]["data"]
    assert config["OPSLEDGER_NATS_URL"].startswith("nats://nats:")


def test_the_image_is_the_one_the_kustomization_names() -> None:
    for obj in OBJECTS:
        for container in containers(obj):
            if container["name"] in ("api", "worker", "migrate"):
                assert container["image"] == "registry.example.com/opsledger:0.1.0"


# -- compose ------------------------------------------------------------------------------------

def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_the_compose_file_runs_the_whole_stack_with_health_checks() -> None:
    services = compose()["services"]
    assert {"postgres", "migrate", "api", "worker", "nats", "otel-collector", "jaeger"} \
        <= set(services)
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):  # the short form: started, no condition
            depends = {d: {"condition": "service_started"} for d in depends}
        for dependency, how in depends.items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if how.get("condition") == "service_healthy":
                check = services[dependency].get("healthcheck", {})
                assert check.get("test") and not check.get("disable"), dependency
        for port in service.get("ports", []):
            assert re.fullmatch(r"\d+:\d+", str(port)), port
    assert services["api"]["healthcheck"]["test"][-1].count("/readyz") == 1
    assert services["api"]["ports"] == ["8000:8000"]
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["migrate"]["command"] == ["migrate"]
    assert "-js" in services["nats"]["command"]
    assert "16686:16686" in services["jaeger"]["ports"]
    env = services["api"]["environment"]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    assert env["OPSLEDGER_CREATE_SCHEMA"] == "false"
    assert services["migrate"]["environment"]["OPSLEDGER_CREATE_SCHEMA"] == "true"
    for secret in ("OPSLEDGER_JWT_SECRET", "OPSLEDGER_SIGNING_KEY"):
        assert env[secret].startswith("${") and ":?" in env[secret]  # never a literal


def test_the_collector_sends_traces_to_jaeger_and_serves_metrics() -> None:
    mounts = compose()["services"]["otel-collector"]["volumes"]
    [config_file] = [m.split(":")[0] for m in mounts if "otel-collector.yaml" in m]
    config = yaml.safe_load((DEPLOY / config_file).read_text())
    pipelines = config["service"]["pipelines"]
    for pipeline in pipelines.values():
        assert set(pipeline["receivers"]) <= set(config["receivers"])
        assert set(pipeline["exporters"]) <= set(config["exporters"])
        assert set(pipeline.get("processors", [])) <= set(config["processors"])
    assert "otlp/jaeger" in pipelines["traces"]["exporters"]
    assert config["exporters"]["otlp/jaeger"]["endpoint"] == "jaeger:4317"
    assert "prometheus" in pipelines["metrics"]["exporters"]
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")


def test_the_dockerfile_is_multi_stage_locked_and_non_root() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+\S+(?:\s+AS\s+(\w+))?", text, re.M)
    assert len(stages) >= 2
    assert "uv.lock" in text and "uv sync --frozen" in text and "--no-dev" in text
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text()
    assert ignore.splitlines()[1 if ignore.startswith("#") else 0].strip() == "*"


# -- settings -----------------------------------------------------------------------------------

def env_name(field: str) -> str:
    info = Settings.model_fields[field]
    alias = info.validation_alias
    return str(alias) if isinstance(alias, str) else f"OPSLEDGER_{field.upper()}"


def test_every_variable_the_deployment_sets_is_a_setting() -> None:
    known = {env_name(f) for f in Settings.model_fields}
    used = set(re.findall(r"\bOPSLEDGER_[A-Z_]+\b", "".join(
        p.read_text() for p in [*K8S.glob("*.yaml"), DEPLOY / "compose.yaml",
                                DEPLOY / "Dockerfile"])))
    assert used <= known, used - known


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"`((?:OPSLEDGER_|DATABASE_URL)[A-Z_]*)`", readme))
    # a row may name a family: `OPSLEDGER_WEBHOOK_RETRY_BASE_SECONDS` / `…_MAX_SECONDS`
    families = re.findall(r"`(OPSLEDGER_[A-Z_]+?_)[A-Z]+`\s*/\s*`…(_[A-Z_]+)`", readme)
    documented |= {prefix.rsplit("_", 2)[0] + suffix for prefix, suffix in families}
    hosts = re.findall(r"`(OPSLEDGER_[A-Z_]+)` / `(OPSLEDGER_[A-Z_]+)`", readme)
    documented |= {n for pair in hosts for n in pair}
    missing = sorted(env_name(f) for f in Settings.model_fields
                     if env_name(f) not in documented)
    assert not missing, f"settings missing from the README: {missing}"
