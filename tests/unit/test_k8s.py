"""Kubernetes manifests (devtools/k8s.py): valid against the Kubernetes API schemas
(kubernetes-validate bundles them: no cluster, no network), one StatefulSet of one replica
per validator with its Service, probes, scrape annotations and resources, and Secrets
written only when asked."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from devtools import k8s
from devtools.netgen import NetSpec, generate
from node import ceremony
from node.netconfig import Network

K8S_VERSION = "1.37.0"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Network:
    out = tmp_path_factory.mktemp("k8s") / "run"
    return generate(out, NetSpec(4, 3, containers=True), progress=lambda _: None)


def _load(out: Path) -> dict[str, list[dict[str, Any]]]:
    return {p.name: list(yaml.safe_load_all(p.read_text())) for p in sorted(out.glob("*.yaml"))}


@pytest.fixture(scope="module")
def generated(run: Network, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("manifests")
    assert k8s.main(["--from-run-dir", str(run.run_dir), "--out", str(out)]) == 0
    return out


def _validate(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_every_manifest_validates_against_the_kubernetes_schemas(generated: Path) -> None:
    files = _load(generated)
    assert sorted(files) == ["genesis.yaml", "val00.yaml", "val01.yaml", "val02.yaml", "val03.yaml"]
    secrets = _load(generated / "secrets")
    docs = [d for f in (files, secrets) for ds in f.values() for d in ds]
    assert len(docs) == 1 + 4 * 3 + 4
    for doc in docs:
        _validate(doc)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "replicas"), "one"),  # wrong type
        (("spec", "template", "spec", "containers"), [{"image": "x"}]),  # no name
        (("spec", "colour"), "blue"),  # unknown field (strict)
    ],
)
def test_a_broken_manifest_is_refused(generated: Path, path: tuple[str, ...], value: Any) -> None:
    statefulset = _load(generated)["val01.yaml"][2]
    _validate(statefulset)  # control
    target = statefulset
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(statefulset)


def test_one_statefulset_per_validator_with_probes_scrape_and_resources(
    generated: Path, run: Network
) -> None:
    for node in run.nodes:
        config_map, service, sts = _load(generated)[f"{node.id}.yaml"]
        assert sts["kind"] == "StatefulSet" and sts["spec"]["replicas"] == 1
        pod = sts["spec"]["template"]
        assert pod["metadata"]["annotations"] == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(node.client_port + 1000),
            "prometheus.io/path": "/metrics",
        }
        (c,) = pod["spec"]["containers"]
        assert c["resources"]["requests"] == {"cpu": "500m", "memory": "512Mi"}
        for probe, service_name in (("livenessProbe", ""), ("readinessProbe", "ledger.v1.Ledger")):
            cmd = c[probe]["exec"]["command"]
            assert cmd[:3] == ["python", "-m", "node.probe"] and cmd[-1] == service_name
        keys = next(v for v in pod["spec"]["volumes"] if v["name"] == "keys")
        assert keys["secret"]["secretName"] == f"{node.id}-keys"
        # Peers dial node-XX (the bundle's host): that is this Service's name.
        assert service["metadata"]["name"] == node.name == node.host
        assert {p["port"] for p in service["spec"]["ports"]} == {
            node.peer_port,
            node.client_port,
            node.client_port + 1000,
        }
        cfg = json.loads(config_map["data"]["config.json"])
        assert (cfg["genesis"], cfg["signing_key"], cfg["data_dir"]) == (
            "../ledger/genesis.json",
            "../keys/validator.key",
            "../data",
        )
        assert {p["address"] for p in cfg["peers"]} == {
            f"{x.name}:{x.peer_port}" for x in run.nodes if x is not node
        }


def test_the_genesis_config_map_carries_the_public_files(generated: Path, run: Network) -> None:
    (cm,) = _load(generated)["genesis.yaml"]
    assert cm["data"]["genesis.json"] == run.genesis.read_text()
    assert cm["data"]["validators.pem"] == run.tls_pinned.read_text()


def test_secrets_only_when_told_and_private(generated: Path, run: Network, tmp_path: Path) -> None:
    secret = generated / "secrets" / "val02.yaml"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE((generated / "secrets").stat().st_mode) == 0o700
    (doc,) = yaml.safe_load_all(secret.read_text())
    key_file = run.nodes[2].dir / "validator.key"
    assert base64.b64decode(doc["data"]["validator.key"]) == key_file.read_bytes()

    # From a ceremony's public files: manifests for one validator, no Secret written.
    out = tmp_path / "bank02"
    argv = ["--genesis", str(run.genesis), "--validator", "val02", "--out", str(out)]
    assert k8s.main(argv) == 0
    assert sorted(_load(out)) == ["genesis.yaml", "val02.yaml"]
    assert not (out / "secrets").exists()
    assert not any("PRIVATE KEY" in p.read_text() for p in out.glob("*.yaml"))


def test_keys_of_another_validator_are_refused(
    run: Network, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = f"val01={run.nodes[2].dir}"
    argv = ["--genesis", str(run.genesis), "--keys", wrong, "--out", str(tmp_path)]
    assert k8s.main(argv) == 2
    assert "other keys" in capsys.readouterr().err
    assert not (tmp_path / "secrets" / "val01.yaml").exists()


def test_an_unknown_validator_is_refused(run: Network, tmp_path: Path) -> None:
    with pytest.raises(ceremony.CeremonyError, match="val09"):
        asm = ceremony.load_assembly(run.genesis)
        k8s.manifests(asm, "", b"", only=["val09"])
