"""The create body of a faithful copy, from a synthetic inspect document (no daemon)."""

from __future__ import annotations

from kernel.containers.clone import _merged_env, clone_spec
from kernel.containers.view import ContainerView
from kernel.secret_value import SecretValue
from tests.unit.rotation_fixtures import OLD_ID, inspect_doc


def test_copy_keeps_config_and_host_config() -> None:
    old = ContainerView(
        inspect_doc(
            HostConfig__NetworkMode="appnet",
            HostConfig__CapAdd=["NET_ADMIN"],
            HostConfig__RestartPolicy={"Name": "always", "MaximumRetryCount": 0},
            Config__StopSignal="SIGQUIT",
        )
    )
    spec = clone_spec(old, name="web_dso_new_0a0b0c0d", labels={"dso.rotation": "0a0b0c0d"})
    body = spec.body
    assert body["HostConfig"]["CapAdd"] == ["NET_ADMIN"]
    # The copy runs with "no" until it holds the name; the policy is handed over then.
    assert body["HostConfig"]["RestartPolicy"]["Name"] == "no"
    assert spec.restart_policy == {"Name": "always", "MaximumRetryCount": 0}
    assert body["StopSignal"] == "SIGQUIT"
    assert body["Cmd"] == ["httpd", "-f"]
    assert body["Labels"] == {"app": "web", "dso.rotation": "0a0b0c0d"}
    assert "Hostname" not in body  # the old short id: the copy gets its own
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"appnet": {"Aliases": ["web"]}}}
    assert spec.extra_networks == ()


def test_a_chosen_hostname_is_kept() -> None:
    old = ContainerView(inspect_doc(Config__Hostname="db-primary"))
    assert clone_spec(old, name="x").body["Hostname"] == "db-primary"


def test_extra_networks_keep_aliases_and_static_addresses() -> None:
    networks = inspect_doc()["NetworkSettings"]["Networks"]
    networks["backend"] = {
        "IPAMConfig": {"IPv4Address": "10.9.0.5"},
        "Aliases": ["db", OLD_ID[:12]],
        "NetworkID": "b" * 64,
        "Links": None,
        "DriverOpts": None,
    }
    spec = clone_spec(ContainerView(inspect_doc(NetworkSettings__Networks=networks)), name="x")
    (extra,) = spec.extra_networks
    assert (extra.name, extra.aliases, extra.ipv4) == ("backend", ("db",), "10.9.0.5")


def test_deferred_aliases_join_every_network_without_them() -> None:
    """A rolling copy must not be handed clients by Docker's DNS before its health gate."""
    networks = inspect_doc(HostConfig__NetworkMode="appnet")["NetworkSettings"]["Networks"]
    networks["appnet"] = {"Aliases": ["web", OLD_ID[:12]], "NetworkID": "a" * 64}
    networks["backend"] = {
        "IPAMConfig": {"IPv4Address": "10.9.0.5"},
        "Aliases": ["db", OLD_ID[:12]],
        "NetworkID": "b" * 64,
    }
    old = ContainerView(
        inspect_doc(HostConfig__NetworkMode="appnet", NetworkSettings__Networks=networks)
    )
    spec = clone_spec(old, name="x", defer_aliases=True)
    assert "Aliases" not in spec.body["NetworkingConfig"]["EndpointsConfig"]["appnet"]
    (extra,) = spec.extra_networks
    assert (extra.name, extra.aliases, extra.ipv4) == ("backend", (), "10.9.0.5")
    # Without deferral (restart: the old one is stopped first) they come along.
    eager = clone_spec(old, name="x")
    assert eager.body["NetworkingConfig"]["EndpointsConfig"]["appnet"]["Aliases"] == ["web"]


def test_default_bridge_gets_no_aliases() -> None:
    old = ContainerView(
        inspect_doc(
            HostConfig__NetworkMode="default",
            NetworkSettings__Networks={
                "bridge": {"Aliases": None, "NetworkID": "c" * 64, "IPAMConfig": None}
            },
        )
    )
    body = clone_spec(old, name="x").body
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"bridge": {}}}


def test_links_come_back_in_create_form() -> None:
    old = ContainerView(inspect_doc(HostConfig__Links=["/db:/web/database"]))
    assert clone_spec(old, name="x").body["HostConfig"]["Links"] == ["db:database"]


def test_implicit_volumes_are_reused_by_name() -> None:
    old = ContainerView(
        inspect_doc(
            Mounts=[
                {"Type": "volume", "Name": "f" * 64, "Destination": "/data", "RW": True},
                {"Type": "volume", "Name": "named", "Destination": "/named", "RW": True},
            ],
            HostConfig__Binds=["named:/named"],
            Config__Volumes={"/data": {}},
        )
    )
    mounts = clone_spec(old, name="x").body["HostConfig"]["Mounts"]
    assert mounts == [{"Type": "volume", "Source": "f" * 64, "Target": "/data", "ReadOnly": False}]


def test_secret_values_stay_masked_until_create() -> None:
    secret = SecretValue("n3w-s3cret")
    spec = clone_spec(ContainerView(inspect_doc()), name="x", env={"DB_PASSWORD": secret})
    assert "n3w-s3cret" not in repr(spec)
    assert "n3w-s3cret" not in str(spec.body)
    merged = _merged_env(["DB_PASSWORD=old", "PATH=/bin"], {"DB_PASSWORD": secret})
    assert merged == ["DB_PASSWORD=n3w-s3cret", "PATH=/bin"]
    assert _merged_env([], {"NEW": secret}) == ["NEW=n3w-s3cret"]


def test_bind_sources_move_binds_and_mounts_to_new_host_paths() -> None:
    doc = inspect_doc(
        HostConfig__Binds=["/shm/web:/run/secrets/dso:ro", "/data:/data"],
        HostConfig__Mounts=[
            {"Type": "bind", "Source": "/shm/web", "Target": "/run/secrets/app", "ReadOnly": True}
        ],
    )
    spec = clone_spec(
        ContainerView(doc),
        name="web_dso_new_1a2b3c4d",
        bind_sources={"/run/secrets/dso": "/shm/web@1", "/run/secrets/app": "/shm/web@2"},
    )
    host_config = spec.body["HostConfig"]
    assert host_config["Binds"] == ["/shm/web@1:/run/secrets/dso:ro", "/data:/data"]
    assert host_config["Mounts"][0]["Source"] == "/shm/web@2"
    assert host_config["Mounts"][0]["ReadOnly"] is True
    assert doc["HostConfig"]["Binds"][0] == "/shm/web:/run/secrets/dso:ro", "input untouched"
