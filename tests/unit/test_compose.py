"""docker/: the compose and Prometheus files devtools/compose.py generates, the Grafana
dashboard, the Dockerfile.

No Docker engine runs here, so these tests check what can be checked without one: the
files parse, name every node, volume and port, agree with each other and with the node
configs (the dashboard and alert rules: test_dashboard.py).
"""

from __future__ import annotations

import json
import posixpath
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools import compose as gen
from devtools.netgen import CONTAINER_CONFIG, CONTAINER_NODE_DIR
from node.config import HEALTH_PROBE_TIMEOUT_MS
from node.netconfig import Network, load_network, load_node_config

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"


class Generated:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.net: Network = load_network(out)
        self.compose: dict[str, Any] = yaml.safe_load((out / "compose.yaml").read_text())
        self.prometheus: dict[str, Any] = yaml.safe_load((out / "prometheus.yml").read_text())

    def node_services(self) -> dict[str, Any]:
        return {x.name: self.compose["services"][x.name] for x in self.net.nodes}


@pytest.fixture(scope="module", params=[4, 26])
def generated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    n = request.param
    out = tmp_path_factory.mktemp(f"compose{n}") / "generated"
    assert gen.main(["--n", str(n), "--out", str(out)]) == 0
    return Generated(out)


def test_compose_has_a_service_per_node_plus_prometheus_and_grafana(generated: Generated) -> None:
    names = [x.name for x in generated.net.nodes]
    assert list(generated.compose["services"]) == [*names, "prometheus", "grafana"]
    assert generated.net.q == (16 if generated.net.n == 26 else 3)


def test_each_node_mounts_its_own_files_read_only_and_a_named_data_volume(
    generated: Generated,
) -> None:
    declared = generated.compose["volumes"]
    for name, svc in generated.node_services().items():
        mounts = {m["target"]: m for m in svc["volumes"]}
        node_dir = mounts[CONTAINER_NODE_DIR]
        assert node_dir["source"] == f"./nodes/{name}"
        assert (generated.out / node_dir["source"] / "config.json").is_file()
        binds = [m for m in svc["volumes"] if m["type"] == "bind"]
        assert all(m["read_only"] for m in binds)
        assert all((generated.out / m["source"]).exists() for m in binds)
        assert not any(m["source"].endswith("ca.key") for m in binds)  # the CA key stays home
        (data,) = (m for m in svc["volumes"] if m["type"] == "volume")
        assert data["source"] == f"{name}-data"
        assert data["source"] in declared
        assert svc["networks"] == ["ledger"]


def test_node_configs_name_the_files_where_compose_mounts_them(generated: Generated) -> None:
    """A config's relative paths, read from /run/node/config.json, land on the mounts."""
    for x, svc in zip(generated.net.nodes, generated.node_services().values(), strict=True):
        raw = json.loads(x.config.read_text())
        assert raw["listen_host"] == "0.0.0.0"
        targets = {m["target"]: m for m in svc["volumes"]}
        base = posixpath.dirname(CONTAINER_CONFIG)
        for field in ("genesis", "tls_pinned", "signing_key", "tls_cert", "tls_key", "data_dir"):
            in_container = posixpath.normpath(posixpath.join(base, raw[field]))
            mount = next(
                (t for t in targets if in_container == t or in_container.startswith(t + "/")),
                None,
            )
            assert mount is not None, f"{x.name}: {field} {in_container} is not mounted"
            if targets[mount]["type"] == "bind":
                host_side = generated.out / targets[mount]["source"]
                assert (host_side / posixpath.relpath(in_container, mount)).exists()
        cfg = load_node_config(x.config)
        services = generated.compose["services"]
        for peer in cfg.peers:
            host, _, port = peer.address.rpartition(":")
            assert host == peer.tls_name and host in services  # compose DNS name
            assert int(port) == generated.net.nodes[peer.validator].peer_port


def test_published_ports_are_local_and_never_collide(generated: Generated) -> None:
    published: list[int] = []
    for svc in generated.compose["services"].values():
        for spec in svc.get("ports", []):
            host, host_port, _ = spec.split(":")
            assert host == "127.0.0.1"
            published.append(int(host_port))
    assert len(published) == len(set(published)) == 2 * generated.net.n + 2
    for x, svc in zip(generated.net.nodes, generated.node_services().values(), strict=True):
        assert svc["ports"] == [
            f"127.0.0.1:{x.client_port}:{x.client_port}",
            f"127.0.0.1:{x.metrics_port}:{x.metrics_port}",
        ]
    assert "127.0.0.1:9090:9090" in generated.compose["services"]["prometheus"]["ports"]
    assert "127.0.0.1:3000:3000" in generated.compose["services"]["grafana"]["ports"]


def test_build_context_is_the_repository_with_the_docker_dockerfile(
    generated: Generated,
) -> None:
    first, *others = generated.node_services().values()
    build = first["build"]
    assert (generated.out / build["context"]).resolve() == ROOT
    assert (ROOT / build["dockerfile"]).is_file()
    # One build: every other node runs the image the first one built, never pulls it.
    assert {svc["image"] for svc in (first, *others)} == {gen.IMAGE}
    assert all("build" not in svc and svc["pull_policy"] == "never" for svc in others)


def test_every_node_has_a_healthcheck_that_runs_ledger_node_health(generated: Generated) -> None:
    for svc in generated.node_services().values():
        check = svc["healthcheck"]
        assert check["test"] == ["CMD", "python", "-m", "node", "health", CONTAINER_CONFIG]
        assert int(check["timeout"].rstrip("s")) * 1000 > HEALTH_PROBE_TIMEOUT_MS


def test_prometheus_scrapes_every_node(generated: Generated) -> None:
    (job,) = generated.prometheus["scrape_configs"]
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == [f"{x.name}:{x.metrics_port}" for x in generated.net.nodes]
    labels = [sc["labels"]["node"] for sc in job["static_configs"]]
    assert labels == [x.name for x in generated.net.nodes]
    mounts = generated.compose["services"]["prometheus"]["volumes"]
    assert mounts[0]["source"] == "./prometheus.yml"
    # The alert rules: the committed file, where prometheus.yml says.
    (rules,) = generated.prometheus["rule_files"]
    (alerts,) = [m for m in mounts if m.get("target") == rules]
    assert (generated.out / alerts["source"]).resolve() == DOCKER / "prometheus" / "alerts.yml"


def test_grafana_is_provisioned_from_the_committed_files(generated: Generated) -> None:
    grafana = generated.compose["services"]["grafana"]
    mounts = {
        m["target"]: generated.out / m["source"] for m in grafana["volumes"] if m["type"] == "bind"
    }
    provisioning = mounts["/etc/grafana/provisioning"].resolve()
    dashboards = mounts["/etc/grafana/dashboards"].resolve()
    assert provisioning == DOCKER / "grafana" / "provisioning"
    assert (dashboards / "ledger.json").is_file()
    providers = yaml.safe_load((provisioning / "dashboards" / "ledger.yaml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"


# --- Dockerfile --------------------------------------------------------------------------


def test_dockerfile_base_entrypoint_and_pins_match_the_project() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert 'ENTRYPOINT ["python", "-m", "node", "--config", "/run/node/config.json"]' in text
    assert CONTAINER_CONFIG == "/run/node/config.json"
    # The image installs the lock, hash-checked, and the wheel the build hook made.
    assert "pip install --require-hashes -r /tmp/validator.lock" in text
    assert "pip wheel --no-deps --wheel-dir /wheels ." in text
    assert "pip install --no-deps /tmp/wheels/*.whl" in text
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") :][:8] == [
        "*",
        "!pyproject.toml",
        "!setup.py",
        "!MANIFEST.in",
        "!README.md",
        "!requirements/validator.lock",
        "!proto",
        "!node",
    ]
    assert "**/*.key" in ignore


# --- generator behaviour -----------------------------------------------------------------


def test_yaml_round_trips_awkward_values() -> None:
    doc = {
        "plain": "yes",
        "clock": "22:22",
        "nothing": None,
        "empty": "",
        "octal": "0o17",
        "unicode": "Zürich",
        "flags": [True, False, 0, 7000],
        "nested": {"list": [{"a": 1, "b": [1, 2]}, [], {}, ["x"]], "map": {}},
        "key with space": "v",
        "block": "line one\n  indented\n",  # a literal block
        "no block": "trailing space \n\tand a tab",  # no block can hold it exactly
    }
    text = gen.dump_yaml([doc], "header")  # devtools.k8s's, which compose.py uses
    assert text.startswith("# header\n")
    assert yaml.safe_load(text) == doc


@pytest.mark.parametrize("port_base", [7090, 2000])
def test_refuses_node_ports_that_prometheus_or_grafana_publish(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], port_base: int
) -> None:
    out = tmp_path / "generated"
    argv = ["--n", "4", "--port-base", str(port_base), "--out", str(out)]
    assert gen.main(argv) == 2
    assert "choose another --port-base" in capsys.readouterr().err
    assert not out.exists()


def test_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "generated"
    assert gen.main(["--n", "4", "--out", str(out)]) == 0
    first = load_network(out).chain_id
    assert gen.main(["--n", "4", "--out", str(out)]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert gen.main(["--n", "4", "--out", str(out), "--force"]) == 0
    assert load_network(out).chain_id != first
