"""deploy/kubernetes/ as the tests read it: its objects, the example Secrets filled with
working values, and the Deployment's pod turned into the ``podman run`` that stands for it
where there is no cluster."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from cbmon.delivery import signing

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
# What the example Secrets leave to the user, by the words that stand for it.
PLACEHOLDERS = ("PASSWORD@db.example.internal:5432/app?sslmode=require", "whsec_REPLACE",
                "BCRYPT_HASH", "REPLACE")  # fmt: skip

Object = dict[str, Any]


def objects(name: str) -> list[Object]:
    """The objects of one file of deploy/kubernetes/."""
    text = (MANIFESTS / name).read_text(encoding="utf-8")
    return [item for item in yaml.safe_load_all(text) if item is not None]


def applied() -> list[Object]:
    """Every object ``kubectl apply -k deploy/kubernetes`` applies: the kustomization's
    resources, as they are (it has no generators, patches or transformers)."""
    kustomization = objects("kustomization.yaml")[0]
    return [item for name in kustomization["resources"] for item in objects(name)]


def one(kind: str, items: list[Object] | None = None) -> Object:
    found = [item for item in (applied() if items is None else items) if item["kind"] == kind]
    assert len(found) == 1, f"{len(found)} objects of kind {kind}"
    return found[0]


@dataclass(frozen=True)
class Filled:
    """The example Secrets with their placeholders replaced by working values."""

    cbmon: dict[str, str]  # the Secret "cbmon": file name -> content
    scrape_user: str
    scrape_password: str


def fill_secrets(dsn: str) -> Filled:
    """secret.example.yaml as a user fills it in: the DSN, fresh secrets, a bcrypt hash of a
    fresh scrape password. Fails if a placeholder is left over."""
    cbmon, scrape = (item["stringData"] for item in objects("secret.example.yaml"))
    password = base64.urlsafe_b64encode(signing.new_secret().encode()).decode()[:24]
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
    values = {
        "dsn": dsn,
        "webhook-secret": signing.new_secret(),
        "cluster-secret": signing.new_secret().removeprefix("whsec_"),
        "web-config.yml": cbmon["web-config.yml"].replace("BCRYPT_HASH", f"'{hashed}'"),
    }
    assert set(values) == set(cbmon), "secret.example.yaml's keys changed"
    scrape = {**scrape, "password": password}
    for value in (*values.values(), *scrape.values()):
        assert not any(word in value for word in PLACEHOLDERS), value
    return Filled(values, scrape["username"], password)


@dataclass(frozen=True)
class Pod:
    """The Deployment's one container as ``podman run`` arguments, and what to probe."""

    args: list[str]
    port: int
    probes: dict[str, str]  # probe name -> path
    grace: int  # terminationGracePeriodSeconds


def podman_run(image: str, place: Path, filled: Filled, port: int) -> Pod:
    """The Deployment's pod on this host's network, where its port is a free one (``port``):
    the image, environment, user, read-only root, capabilities, the ConfigMap and the Secret
    as files where the pod mounts them (read-only), the state volume as an emptyDir (a
    world-writable directory, as the kubelet makes one)."""
    deployment = one("Deployment")
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    pod_security, security = spec["securityContext"], container["securityContext"]
    config = one("ConfigMap")["data"]
    contents = {"configMap": config, "secret": filled.cbmon}
    args = ["--network", "host", "--health-interval", "disable"]
    args += ["--user", f"{pod_security['runAsUser']}:{pod_security['runAsGroup']}"]
    args += ["--group-add", str(pod_security["fsGroup"])]
    if security.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    args += [f"--cap-drop={cap}" for cap in security["capabilities"]["drop"]]
    if security.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    for variable in container.get("env", []):
        args += ["--env", f"{variable['name']}={variable['value']}"]
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        source = place / mount["name"]
        source.mkdir(parents=True)
        kind = next(key for key in ("configMap", "secret", "emptyDir") if key in volume)
        if kind == "emptyDir":
            source.chmod(0o777)
        else:
            # Files as the kubelet writes them: the volume's mode, the pod's fsGroup.
            mode = volume[kind].get("defaultMode", 0o644)
            for name, text in contents[kind].items():
                path = source / name
                path.write_text(_on_port(text, port) if kind == "configMap" else text)
                if os.geteuid() == 0:
                    os.chown(path, 0, pod_security["fsGroup"])
                path.chmod(mode if os.geteuid() == 0 else 0o644)
            source.chmod(0o755)
        suffix = ":ro" if mount.get("readOnly") else ""
        args += ["--volume", f"{source}:{mount['mountPath']}{suffix}"]
    (declared,) = container["ports"]
    probes = {
        name: container[name]["httpGet"]["path"]
        for name in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    for name in probes:
        assert container[name]["httpGet"]["port"] == declared["name"], name
    image_args = [*args, image, *container.get("args", [])]
    return Pod(image_args, port, probes, spec["terminationGracePeriodSeconds"])


def _on_port(text: str, port: int) -> str:
    """The pod shares this host's network in the test: it listens on 127.0.0.1 and a free port
    instead of every interface and the container port."""
    listen = "listen: 0.0.0.0:9863"
    assert listen in text, "the ConfigMap's listen line changed"
    return text.replace(listen, f"listen: 127.0.0.1:{port}")
