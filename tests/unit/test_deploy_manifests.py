"""deploy/kubernetes/: the manifests parse, are well-formed Kubernetes objects, and agree
with our real parsers and with each other (targets, ports, paths, mounts).

No cluster here: these checks are what stands between the manifests and rot. Flags are
checked with the real parsers (`serving.config.flags.parse_flags`,
`controller.cli.main.build_parser`, `controller.cli.settings.load_settings`), the config
files with the real readers.
"""

from __future__ import annotations

import argparse
import re
import shlex
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.cli import controller as cli_controller
from controller.cli.main import build_parser
from controller.cli.settings import load_settings
from controller.spec.load import load_specs
from serving.config.files import read_model_server_config, read_monitoring_config
from serving.config.flags import ServerFlags, parse_flags

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUBE = DEPLOY / "kubernetes"
NAMESPACE = "model-rollouts"
IMAGE = "ghcr.io/example/model-rollouts:0.1.0"
SERVING_FILES = ("serving-statefulset.yaml", "tf-serving-statefulset.yaml")
# Flags of the bundled server that tensorflow_model_server does not have.
EXTENSION_FLAGS = {
    "bind_address",
    "version_transition_policy",
    "servable_versions_always_present",
    "reload_config_timeout_seconds",
}
API_VERSIONS = {
    "Namespace": "v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "Service": "v1",
    "PersistentVolumeClaim": "v1",
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "PodDisruptionBudget": "policy/v1",
}

Obj = dict[str, Any]


def manifest_files() -> list[Path]:
    return sorted(p for p in KUBE.glob("*.yaml") if p.name != "kustomization.yaml")


def objects(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def find(docs: list[Obj], kind: str, name: str | None = None) -> Obj:
    hits = [
        d for d in docs
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, found {len(hits)}"
    return hits[0]


def container(workload: Obj) -> Obj:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: Obj = containers[0]
    return result


def port(c: Obj, name: str) -> int:
    return int(next(p["containerPort"] for p in c["ports"] if p["name"] == name))


def mounted_file(docs: list[Obj], workload: Obj, path: str) -> tuple[str, str]:
    """(volume source kind, file text) of the ConfigMap or Secret key mounted at `path`."""
    pod = workload["spec"]["template"]["spec"]
    for mount in container(workload)["volumeMounts"]:
        directory = mount["mountPath"].rstrip("/") + "/"
        if not path.startswith(directory):
            continue
        key = path[len(directory):]
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        if "configMap" in volume:
            data = find(docs, "ConfigMap", volume["configMap"]["name"])["data"]
            return "configMap", str(data[key])
        if "secret" in volume:
            data = find(docs, "Secret", volume["secret"]["secretName"])["stringData"]
            return "secret", str(data[key])
    raise AssertionError(f"{path} is not inside any volume mount")


def mount_of(workload: Obj, claim: str) -> str:
    pod = workload["spec"]["template"]["spec"]
    volume = next(
        v["name"] for v in pod["volumes"]
        if v.get("persistentVolumeClaim", {}).get("claimName") == claim
    )
    return str(next(m["mountPath"] for m in container(workload)["volumeMounts"]
                    if m["name"] == volume))


ALL = {path.name: objects(path) for path in manifest_files()}
EVERYTHING = [obj for docs in ALL.values() for obj in docs]
CONTROLLER_DOCS = ALL["controller.yaml"]
CONTROLLER = find(CONTROLLER_DOCS, "Deployment", "rollouts-controller")
BUNDLED = ALL["serving-statefulset.yaml"]


def serving_flags(docs: list[Obj], bundled: bool) -> ServerFlags:
    c = container(find(docs, "StatefulSet"))
    args = list(c["args"])
    if bundled:
        assert c["image"] == IMAGE
        assert args[0] == "serve"  # `rollouts serve` passes the rest to the server verbatim
        args = args[1:]
    else:
        assert c["image"].startswith("tensorflow/serving:")
        assert c["command"] == ["tensorflow_model_server"]
        used = {arg.lstrip("-").partition("=")[0] for arg in args}
        assert not used & EXTENSION_FLAGS, "flags real TF Serving does not know"
    return parse_flags(args)


def controller_args() -> argparse.Namespace:
    c = container(CONTROLLER)
    assert c["image"] == IMAGE
    return build_parser(extensions=True).parse_args(c["args"])


def controller_config(tmp_path: Path) -> tuple[dict[str, Any], Any]:
    """(raw config mapping, ControllerSettings) through the real settings loader."""
    args = controller_args()
    kind, text = mounted_file(CONTROLLER_DOCS, CONTROLLER, args.config)
    assert kind == "configMap"
    raw = yaml.safe_load(text)
    config_file = tmp_path / "controller.yaml"
    config_file.write_text(text)
    # The secret file exists only in the pod: stand in a copy of the Secret's value.
    args.config = str(config_file)
    for key, flag in (("webhookSecretFile", "webhook_secret_file"),
                      ("dashboardTokenFile", "dashboard_token_file")):
        secret_kind, secret = mounted_file(CONTROLLER_DOCS, CONTROLLER, raw[key])
        assert secret_kind == "secret", key
        secret_file = tmp_path / flag
        secret_file.write_text(secret)
        setattr(args, flag, str(secret_file))
    return raw, load_settings(args)


# --- shape ---------------------------------------------------------------------------


def test_manifests_exist() -> None:
    assert {p.name for p in manifest_files()} == {
        "namespace.yaml", "controller.yaml", "model-root-pvc.yaml", *SERVING_FILES
    }


@pytest.mark.parametrize("obj", EVERYTHING, ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_every_object_is_well_formed(obj: Obj) -> None:
    assert obj["apiVersion"] == API_VERSIONS[obj["kind"]]
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", obj["metadata"]["name"])
    if obj["kind"] != "Namespace":
        assert obj["metadata"]["namespace"] == NAMESPACE
    if obj["kind"] in ("Deployment", "StatefulSet", "PodDisruptionBudget", "Service"):
        selector = obj["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        pods = [w for w in EVERYTHING if w["kind"] in ("Deployment", "StatefulSet")]
        assert any(
            selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
            for w in pods
        ), "selector matches no pod template"
    if obj["kind"] in ("Deployment", "StatefulSet"):
        assert obj["spec"]["selector"]["matchLabels"].items() <= (
            obj["spec"]["template"]["metadata"]["labels"].items()
        )
        names = {p["name"] for p in container(obj)["ports"]}
        for probe in ("readinessProbe", "livenessProbe"):
            assert container(obj)[probe]["httpGet"]["port"] in names


def test_kustomization_lists_every_manifest() -> None:
    text = (KUBE / "kustomization.yaml").read_text()
    kustomization = yaml.safe_load(text)
    assert kustomization["kind"] == "Kustomization"
    resources = kustomization["resources"]
    # The TF Serving fleet replaces the bundled one; it is listed as the commented
    # alternative, because both at once would be two fleets under the same names.
    alternatives = re.findall(r"^\s*#\s*-\s*(\S+\.yaml)", text, re.MULTILINE)
    assert alternatives == ["tf-serving-statefulset.yaml"]
    assert sorted(resources + alternatives) == [p.name for p in manifest_files()]
    assert resources.index("namespace.yaml") == 0


def test_the_tf_serving_fleet_is_a_drop_in_replacement() -> None:
    def names(docs: list[Obj]) -> set[tuple[str, str]]:
        return {(d["kind"], d["metadata"]["name"]) for d in docs}

    assert names(ALL["serving-statefulset.yaml"]) == names(ALL["tf-serving-statefulset.yaml"])


def test_controller_is_one_replica_recreated() -> None:
    spec = CONTROLLER["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


# --- the bundled server and real TF Serving ------------------------------------------


@pytest.mark.parametrize("name", SERVING_FILES)
def test_server_args_parse_and_match_ports_and_files(name: str) -> None:
    docs = ALL[name]
    statefulset = find(docs, "StatefulSet")
    flags = serving_flags(docs, bundled=name == "serving-statefulset.yaml")
    c = container(statefulset)
    assert flags.port == port(c, "grpc") == 8500
    assert flags.rest_api_port == port(c, "http") == 8501
    # The server must not poll its file: that would undo the controller's pushes.
    assert flags.model_config_file_poll_wait_seconds == 0
    assert mounted_file(docs, statefulset, flags.model_config_file)[0] == "configMap"
    assert mounted_file(docs, statefulset, flags.monitoring_config_file)[0] == "configMap"


@pytest.mark.parametrize("name", SERVING_FILES)
def test_config_files_parse_with_the_servers_readers(name: str, tmp_path: Path) -> None:
    docs = ALL[name]
    statefulset = find(docs, "StatefulSet")
    flags = serving_flags(docs, bundled=name == "serving-statefulset.yaml")
    models = tmp_path / "models.config"
    models.write_text(mounted_file(docs, statefulset, flags.model_config_file)[1])
    config = read_model_server_config(str(models))
    # Empty on purpose: the controller pushes the real config.
    assert config.WhichOneof("config") == "model_config_list"
    assert len(config.model_config_list.config) == 0
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text(mounted_file(docs, statefulset, flags.monitoring_config_file)[1])
    settings = read_monitoring_config(str(monitoring))
    assert settings.enable
    annotations = statefulset["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == settings.path
    assert int(annotations["prometheus.io/port"]) == flags.rest_api_port


@pytest.mark.parametrize("name", SERVING_FILES)
def test_serving_services_and_probes(name: str) -> None:
    docs = ALL[name]
    statefulset = find(docs, "StatefulSet")
    headless = find(docs, "Service", statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    # The controller configures pods before they are ready: their DNS names must exist.
    assert headless["spec"]["publishNotReadyAddresses"] is True
    c = container(statefulset)
    readiness = c["readinessProbe"]["httpGet"]
    assert readiness["port"] == "http"  # the REST port
    match = re.fullmatch(r"/v1/models/([^/]+)/labels/stable/metadata", readiness["path"])
    assert match, readiness["path"]
    specs = load_specs([REPO / "rollouts"])
    assert match.group(1) in {d.spec.spec.model.name for d in specs.documents}
    assert mount_of(statefulset, "model-root") == "/models"


# --- the controller -------------------------------------------------------------------


def test_controller_args_parse_with_the_real_cli() -> None:
    args = controller_args()
    assert args.command == "run"
    assert args.handler is cli_controller.cmd_run
    assert args.config


def test_controller_config_names_existing_keys_only(tmp_path: Path) -> None:
    # The settings loader validates the file against the config model: an unknown
    # key would have raised in controller_config().
    from controller.spec.controller_config import ControllerConfig

    raw, _ = controller_config(tmp_path)
    known = {info.alias or name for name, info in ControllerConfig.model_fields.items()}
    assert set(raw) <= known, f"unknown keys: {set(raw) - known}"
    for target in raw.get("targets", []):
        assert set(target) <= {"name", "grpc", "metrics"}


def test_controller_discovers_every_replica_through_the_headless_service(
    tmp_path: Path,
) -> None:
    from controller.adapters.metrics import metrics_url

    _, settings = controller_config(tmp_path)
    statefulset = find(BUNDLED, "StatefulSet")
    service_name = statefulset["spec"]["serviceName"]
    namespace = statefulset["metadata"]["namespace"]
    annotations = statefulset["spec"]["template"]["metadata"]["annotations"]
    headless = find(BUNDLED, "Service", service_name)
    assert headless["spec"]["clusterIP"] == "None"  # A records are the pods themselves
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert settings.targets == []
    metrics_port = int(annotations["prometheus.io/port"])
    assert list(settings.targets_dns) == [f"{service_name}.{namespace}.svc:8500,{metrics_port}"]
    # A discovered target's metrics URL gets the default path: the pods serve it there.
    assert urllib.parse.urlsplit(metrics_url("http://10.0.0.1:8501")).path == (
        annotations["prometheus.io/path"])


def test_controller_settings_match_the_pod(tmp_path: Path) -> None:
    raw, settings = controller_config(tmp_path)
    c = container(CONTROLLER)
    host, _, listen_port = settings.listen.rpartition(":")
    assert host == "0.0.0.0"  # kubelet probes and the Service come from outside the pod
    assert int(listen_port) == port(c, "http")
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    service = find(CONTROLLER_DOCS, "Service", "rollouts-controller")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    # The model root is at the same path in the controller and in every server.
    assert settings.model_root == mount_of(CONTROLLER, "model-root")
    assert settings.model_root == mount_of(find(BUNDLED, "StatefulSet"), "model-root")
    assert str(settings.state_dir) == mount_of(CONTROLLER, "rollouts-controller-state")
    assert settings.webhook_secret
    assert settings.prometheus_url == ""  # default: scrape every target directly


def test_git_credentials_come_from_git_mechanisms_not_the_url(tmp_path: Path) -> None:
    raw, settings = controller_config(tmp_path)
    assert not re.search(r"://[^/@]*:[^/@]*@", settings.repo), "password in the repo URL"
    env = {e["name"]: e["value"] for e in container(CONTROLLER)["env"]}
    ssh = shlex.split(env["GIT_SSH_COMMAND"])
    assert ssh[0] == "ssh"
    key_file = ssh[ssh.index("-i") + 1]
    assert mounted_file(CONTROLLER_DOCS, CONTROLLER, key_file)[0] == "secret"
    known_hosts = next(o.split("=", 1)[1] for o in ssh if o.startswith("UserKnownHostsFile="))
    assert mounted_file(CONTROLLER_DOCS, CONTROLLER, known_hosts)[0] == "secret"


def test_dockerfile_builds_the_documented_image() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.MULTILINE)
    assert re.search(r'^ENTRYPOINT \["rollouts"\]$', dockerfile, re.MULTILINE)
    assert IMAGE in dockerfile
    assert IMAGE in (DEPLOY / "README.md").read_text()
