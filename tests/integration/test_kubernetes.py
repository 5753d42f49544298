"""deploy/kubernetes/ without a cluster: every object valid for the Kubernetes API (strictly,
unknown keys refused) on every version the validator ships, and the pieces wired to each
other and to cbmon as a pod needs them. tests/e2e/test_image.py runs the pod in podman.

kubernetes-validate has no schemas for the Prometheus Operator's ServiceMonitor and
PrometheusRule: the ServiceMonitor is checked against the Service it must select, the
PrometheusRule against alerts.yml, whose rules promtool checks and tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from cbmon import __version__
from cbmon.config import load_config
from cbmon.web import webconfig
from tests.support.kubernetes import MANIFESTS, ROOT, applied, fill_secrets, objects, one

FILES = sorted(path.name for path in MANIFESTS.glob("*.yaml"))
CRDS = {"ServiceMonitor", "PrometheusRule"}


def _versions() -> list[str]:
    schemas = resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    found = {m[1] for p in schemas.iterdir() if (m := re.fullmatch(r"v([\d.]+)-local", p.name))}
    return sorted(found, key=lambda v: tuple(map(int, v.split("."))))


VERSIONS = _versions()


def test_the_validator_ships_the_versions_users_run() -> None:
    assert VERSIONS[0] == "1.25.0"
    assert len(VERSIONS) >= 10


@pytest.mark.parametrize(
    "version",
    # The oldest and the newest in the fast layer, every one in the slow.
    [v if v in (VERSIONS[0], VERSIONS[-1]) else pytest.param(v, marks=pytest.mark.slow)
     for v in VERSIONS],
)  # fmt: skip
@pytest.mark.slow
def test_every_object_is_valid_for_the_kubernetes_api(version: str) -> None:
    unvalidated = set()
    for name in FILES:
        if name == "kustomization.yaml":
            continue
        for item in objects(name):
            try:
                kubernetes_validate.validate(item, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                unvalidated.add(item["kind"])
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(map(str, exc.path))
                pytest.fail(f"{name}: {item['kind']} {where}: {exc.message}")
    assert unvalidated == CRDS


def test_the_validator_refuses_a_misspelt_key() -> None:
    """Strict validation is what catches a typo that the API server would drop silently."""
    deployment = one("Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_the_kustomization_applies_every_file_but_the_example_secrets() -> None:
    kustomization = objects("kustomization.yaml")[0]
    assert set(kustomization) == {"apiVersion", "kind", "resources"}  # nothing transforms
    assert sorted(kustomization["resources"]) == sorted(
        set(FILES) - {"kustomization.yaml", "secret.example.yaml"}
    )
    assert {item["kind"] for item in applied()} == {
        "ConfigMap", "Deployment", "Service", "PodDisruptionBudget", *CRDS,
    }  # fmt: skip


@pytest.mark.slow
def test_the_prometheusrule_is_alerts_yml_as_generated() -> None:
    generated = subprocess.run(
        ["bash", str(ROOT / "scripts" / "prometheusrule")],
        capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHON": sys.executable, "CBMON_CONFIG": ""},
    ).stdout  # fmt: skip
    shipped = (MANIFESTS / "prometheusrule.yaml").read_text(encoding="utf-8")
    assert shipped == generated, "run: bash scripts/prometheusrule > " + str(
        (MANIFESTS / "prometheusrule.yaml").relative_to(ROOT)
    )
    alerts = yaml.safe_load((ROOT / "alerts.yml").read_text(encoding="utf-8"))
    assert one("PrometheusRule")["spec"]["groups"] == alerts["groups"]


def _pod() -> tuple[dict[str, Any], dict[str, Any]]:
    spec = one("Deployment")["spec"]["template"]["spec"]
    return spec, spec["containers"][0]


def _mounts(container: dict[str, Any]) -> dict[str, str]:
    return {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}


@pytest.mark.slow
def test_two_replicas_and_every_selector_finds_the_pods() -> None:
    deployment = one("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = one("Service")
    assert deployment["spec"]["replicas"] == 2
    for selector in (
        deployment["spec"]["selector"]["matchLabels"],
        one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        service["spec"]["selector"],
    ):
        assert selector.items() <= labels.items()
    monitor = one("ServiceMonitor")["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    _, container = _pod()
    (port,) = container["ports"]
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == port["name"]
    assert [endpoint["port"] for endpoint in monitor["endpoints"]] == [service_port["name"]]


def test_the_image_is_this_version_and_runs_as_the_images_user() -> None:
    spec, container = _pod()
    assert container["image"] == f"cbmon:{__version__}"
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    (user,) = re.findall(r"^USER (\d+):(\d+)$", dockerfile, flags=re.M)
    security = spec["securityContext"]
    assert (str(security["runAsUser"]), str(security["runAsGroup"])) == user
    assert security["runAsNonRoot"] is True


def test_the_configuration_is_mounted_where_the_command_looks_and_loads(tmp_path: Path) -> None:
    """The config file, each secret file it names and the state directory are where the
    pod's volumes put them; with the example Secret filled in, cbmon loads all of it."""
    spec, container = _pod()
    mounts = _mounts(container)
    env = {variable["name"]: variable["value"] for variable in container["env"]}
    config_path = Path(env["CBMON_CONFIG"])
    assert str(config_path.parent) == mounts["config"]
    text = one("ConfigMap")["data"][config_path.name]
    filled = fill_secrets("postgresql://cbmon@db:5432/app")
    secret_dir = mounts["secrets"]
    named = set(re.findall(rf"{re.escape(secret_dir)}/([\w.-]+)", text))
    assert named == set(filled.cbmon)  # every key of the Secret is used, none is missing
    here = tmp_path / "secrets"
    here.mkdir()
    for name, value in filled.cbmon.items():
        (here / name).write_text(value)
    local = tmp_path / "cbmon.yml"
    local.write_text(text.replace(secret_dir, str(here)))
    config = load_config(local, environ={})
    assert config.dsn == "postgresql://cbmon@db:5432/app"
    assert config.webhook_secret == filled.cbmon["webhook-secret"]
    assert config.cluster_secret == filled.cbmon["cluster-secret"]
    assert str(config.file.alerting.state_dir) == mounts["state"]
    assert "emptyDir" in next(v for v in spec["volumes"] if v["name"] == "state")
    (port,) = container["ports"]
    assert config.file.listen == f"0.0.0.0:{port['containerPort']}"


def test_the_probes_need_no_password_and_metrics_does(tmp_path: Path) -> None:
    _, container = _pod()
    filled = fill_secrets("postgresql://cbmon@db:5432/app")
    path = tmp_path / "web-config.yml"
    path.write_text(filled.cbmon["web-config.yml"])
    web = webconfig.load(path)
    auth = webconfig.BasicAuth(web.basic_auth_users, web.basic_auth_excluded_paths)
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert auth.allows(None, container[probe]["httpGet"]["path"]), probe
    assert not auth.allows(None, "/metrics")
    assert list(web.basic_auth_users) == [filled.scrape_user]  # the ServiceMonitor's user
    monitor = one("ServiceMonitor")["spec"]["endpoints"][0]["basicAuth"]
    assert {monitor["username"]["name"], monitor["password"]["name"]} == {"cbmon-scrape"}


def test_nothing_but_the_state_volume_is_writable() -> None:
    spec, container = _pod()
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    writable = [m["name"] for m in container["volumeMounts"] if not m.get("readOnly")]
    assert writable == ["state"]
    assert spec["automountServiceAccountToken"] is False
