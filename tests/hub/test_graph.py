"""The BinderHub layer's resource graph under Pulumi's mocks (preview=False): what `pulumi -C binderhub up`
would create, wired to the cluster stack's outputs."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from jetstream_binderhub.config.hub import BINDERHUB_CHART_VERSION
from jetstream_binderhub.errors import ConfigError
from jetstream_binderhub.naming import NODE_GROUP_LABEL

from .conftest import PlanHub, run_hub_program

RELEASE = "kubernetes:helm.sh/v3:Release"
FLOATING_IP = "openstack:networking/floatingIp:FloatingIp"
RECORD_SET = "openstack:dns/recordSet:RecordSet"
SECRET = "kubernetes:core/v1:Secret"
PASSWORD = "pl4nted-Quay-r0bot-t0ken-7f3a9c"
TOKEN = "ghp_pl4ntedGitHubT0ken0123456789abcdef"


def walk(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in walk(v)]
    if isinstance(value, list):
        return [x for v in value for x in walk(v)]
    return [value]


def test_every_kubernetes_resource_uses_the_cluster_provider(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    # Every optional resource too: the pull secret of a private registry and the GitHub token's Secret.
    hub_config["binderhub"]["registry"]["private"] = True
    layer = plan_hub(hub_config, secrets={"registry_password": PASSWORD, "github_token": TOKEN}).layer
    k8s = [r for r in layer.resources if r.custom and r.type.startswith("kubernetes:")]
    assert len([r for r in k8s if r.type == SECRET and r.parent == "binderhub"]) == 3
    assert {r.type for r in k8s} >= {
        RELEASE,
        SECRET,
        "kubernetes:core/v1:Namespace",
        "kubernetes:cert-manager.io/v1:ClusterIssuer",
    }
    assert all(r.options.get("provider") == "cluster-k8s" for r in k8s), [
        r.name for r in k8s if r.options.get("provider") != "cluster-k8s"
    ]
    provider = layer.resource("pulumi:providers:kubernetes", "cluster-k8s")
    assert provider.inputs["kubeconfig"] == "[secret]"
    # The Magnum cluster's id, not the kubeconfig text, identifies the cluster.
    assert provider.inputs["cluster_identifier"] == "<pythia-binder-cluster.id>"
    ref = layer.resource("pulumi:pulumi:StackReference")
    assert ref.inputs["name"] == "organization/jetstream-binderhub/jetstream2"


def test_cluster_stack_reference_can_be_renamed(plan_hub: PlanHub, hub_config: dict[str, Any]) -> None:
    hub_config["cluster_stack"] = "pythia/jetstream-binderhub/prod"
    layer = plan_hub(hub_config).layer
    assert layer.resource("pulumi:pulumi:StackReference").inputs["name"] == "pythia/jetstream-binderhub/prod"
    assert layer.output("cluster_stack").value == "pythia/jetstream-binderhub/prod"


def test_releases_are_pinned_named_and_namespaced(plan_hub: PlanHub, hub_config: dict[str, Any]) -> None:
    layer = plan_hub(hub_config).layer
    releases = {r.inputs["chart"]: r.inputs for r in layer.resources if r.type == RELEASE}
    # The support charts (prometheus, grafana) are checked in tests/hub/test_support_monitoring.py.
    assert set(releases) == {
        "binderhub",
        "traefik",
        "cert-manager",
        "dask-gateway",
        "prometheus",
        "grafana",
        "cryptnono",
    }
    expected = {
        "binderhub": (
            "binderhub",
            "binderhub",
            BINDERHUB_CHART_VERSION,
            "https://jupyterhub.github.io/helm-chart",
        ),
        "traefik": ("traefik", "traefik", "41.3.0", "https://traefik.github.io/charts"),
        "cert-manager": ("cert-manager", "cert-manager", "v1.21.1", "https://charts.jetstack.io"),
        # Beside the hub: it mounts the api token from JupyterHub's Secret, which only works in its namespace.
        "dask-gateway": ("dask-gateway", "binderhub", "2026.3.0", "https://helm.dask.org"),
    }
    for chart, (name, namespace, version, repo) in expected.items():
        inputs = releases[chart]
        assert (inputs["name"], inputs["namespace"], inputs["version"]) == (name, namespace, version)
        assert inputs["repository_opts"] == {"repo": repo}
        assert inputs["max_history"] == 10
    bh = releases["binderhub"]
    # Slow first pulls: a long wait, and no automatic uninstall of a first install that times out.
    assert bh["timeout"] == 30 * 60
    assert bh["atomic"] is False and bh["cleanup_on_fail"] is True
    assert layer.output("chart_versions").value == {
        "binderhub": BINDERHUB_CHART_VERSION,
        "traefik": "41.3.0",
        "cert-manager": "v1.21.1",
        "dask-gateway": "2026.3.0",
    }


def test_chart_versions_and_release_settings_follow_the_config(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    hub_config["binderhub"].update(
        chart_version="1.0.0-0.dev.git.4000.h0123abc", release_name="pythia", timeout_minutes=45, atomic=True
    )
    hub_config["ingress"]["chart_version"] = "41.2.0"
    layer = plan_hub(hub_config).layer
    bh = layer.resource(RELEASE, "binderhub-release").inputs
    assert (bh["version"], bh["name"], bh["timeout"], bh["atomic"]) == (
        "1.0.0-0.dev.git.4000.h0123abc",
        "pythia",
        2700,
        True,
    )
    assert layer.resource(RELEASE, "ingress-release").inputs["version"] == "41.2.0"


def test_binderhub_values_match_the_config(plan_hub: PlanHub, hub_config: dict[str, Any]) -> None:
    values = plan_hub(hub_config).values()
    bh = values["config"]["BinderHub"]
    assert bh["hub_url"] == "https://hub.see240014.projects.jetstream-cloud.org"
    assert bh["image_prefix"] == "quay.io/projectpythia/binder-"
    assert bh["use_registry"] is True
    assert bh["per_repo_quota"] == 40
    assert values["config"]["LaunchQuota"] == {"total_quota": 60}
    assert values["config"]["GitHubRepoProvider"] == {
        "allowed_specs": [
            "^ProjectPythia/.*$",
            "^ktyle/.*$",
            "^DAES433533/.*$",
            "^binder-examples/.*",
            "^brian-rose/.*$",
        ]
    }
    assert "'gh': GitHubRepoProvider" in values["extraConfig"]["10-repo-providers"]
    assert values["config"]["DockerRegistry"]["url"] == "https://quay.io"
    assert (
        values["config"]["KubernetesBuildExecutor"]["build_image"]
        == "quay.io/jupyterhub/repo2docker:2026.04.0"
    )
    assert values["imageBuilderType"] == "dind"
    assert values["dind"]["daemonset"]["extraArgs"] == ["--mtu=1400"]
    assert values["service"] == {"type": "ClusterIP"}
    assert values["jupyterhub"]["proxy"]["service"] == {"type": "ClusterIP"}
    for host, ingress in (
        ("binder.see240014.projects.jetstream-cloud.org", values["ingress"]),
        ("hub.see240014.projects.jetstream-cloud.org", values["jupyterhub"]["ingress"]),
    ):
        assert ingress["enabled"] is True and ingress["hosts"] == [host]
        assert ingress["ingressClassName"] == "traefik"
        assert ingress["tls"][0]["hosts"] == [host]
        assert ingress["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt-production"
    cull = values["jupyterhub"]["cull"]
    assert (cull["enabled"], cull["timeout"], cull["maxAge"]) == (True, 1800, 28800)
    single = values["jupyterhub"]["singleuser"]
    assert single["cpu"] == {"guarantee": 1, "limit": 4}
    assert single["memory"] == {"guarantee": "8G", "limit": "8G"}
    assert single["networkPolicy"]["enabled"] is True
    assert values["jupyterhub"]["hub"]["networkPolicy"]["enabled"] is True


def test_selectors_use_the_cluster_stacks_label_values(plan_hub: PlanHub, hub_config: dict[str, Any]) -> None:
    run = plan_hub(hub_config)
    values = run.values()
    core = {NODE_GROUP_LABEL: "default-worker"}
    user = {NODE_GROUP_LABEL: "user-m3-large"}
    assert values["nodeSelector"] == core
    assert values["jupyterhub"]["hub"]["nodeSelector"] == core
    assert values["jupyterhub"]["proxy"]["chp"]["nodeSelector"] == core
    assert values["jupyterhub"]["scheduling"]["userScheduler"]["nodeSelector"] == core
    assert values["jupyterhub"]["singleuser"]["nodeSelector"] == user
    # The dind daemonset and image cleaner follow build_node_selector; build pods their executor's.
    assert values["config"]["BinderHub"]["build_node_selector"] == user
    assert values["config"]["KubernetesBuildExecutor"]["node_selector"] == user
    assert run.values("ingress-release")["nodeSelector"] == core
    assert run.values("cert-manager-release")["global"]["nodeSelector"] == core


def test_selectors_come_from_the_stack_outputs_not_a_recomputation(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    # Whatever the cluster stack reports is what pods select, even if a future driver names labels otherwise.
    outputs = {
        "profile": "jetstream2",
        "cluster_id": "3f1c-magnum-uuid",
        "kubeconfig": "apiVersion: v1",
        "node_group_labels": {"default-worker": "core-pool", "user-m3.large": "users-v2"},
    }
    run = plan_hub(hub_config, cluster_outputs=outputs)
    values = run.values()
    assert values["nodeSelector"] == {NODE_GROUP_LABEL: "core-pool"}
    assert values["jupyterhub"]["singleuser"]["nodeSelector"] == {NODE_GROUP_LABEL: "users-v2"}
    provider = run.layer.resource("pulumi:providers:kubernetes")
    assert provider.inputs["cluster_identifier"] == "3f1c-magnum-uuid"


def test_allow_replace_lifts_the_floating_ips_protect_for_that_update_only(
    plan_hub: PlanHub, hub_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from jetstream_binderhub.naming import ALLOW_REPLACE_ENV

    monkeypatch.setenv(ALLOW_REPLACE_ENV, "some-other-resource")
    assert plan_hub(hub_config).resource(FLOATING_IP).options["protect"] is True
    monkeypatch.setenv(
        ALLOW_REPLACE_ENV, "ingress-floating-ip"
    )  # what `up --allow-replace` hands the program
    assert "protect" not in plan_hub(hub_config).resource(FLOATING_IP).options


def test_floating_ip_is_protected_and_given_to_the_load_balancer(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    run = plan_hub(hub_config)
    fip = run.resource(FLOATING_IP)
    assert fip.inputs["pool"] == "public"
    assert fip.options["protect"] is True
    # The cloud controller attaches it to the load balancer's port; the program never names a port, so
    # (port_id and fixed_ip being Optional+Computed in the provider) no plan moves it back.
    assert not {"port_id", "fixed_ip"} & set(fip.inputs)
    assert not fip.options.get("ignore_changes")
    address = "<ingress-floating-ip.address>"
    # The chart copies service.spec into the controller's Service verbatim: this is the rendered spec.
    service = run.values("ingress-release")["service"]
    assert service["spec"] == {
        "type": "LoadBalancer",
        "loadBalancerIP": address,
        "externalTrafficPolicy": "Local",
    }
    assert service["annotations"] == {
        "loadbalancer.openstack.org/keep-floatingip": "true",
        "loadbalancer.openstack.org/enable-health-monitor": "true",
    }
    assert run.output("ingress_ip") == address


def test_designate_records_point_at_the_floating_ip(plan_hub: PlanHub, hub_config: dict[str, Any]) -> None:
    run = plan_hub(hub_config)
    # Grafana's record belongs to the support component (tests/hub/test_support_monitoring.py).
    records = {
        r.inputs["name"]: r.inputs for r in run.layer.resources if r.type == RECORD_SET and r.parent == "dns"
    }
    assert set(records) == {
        "binder.see240014.projects.jetstream-cloud.org.",
        "hub.see240014.projects.jetstream-cloud.org.",
    }
    for rec in records.values():
        assert rec["type"] == "A"
        assert rec["records"] == ["<ingress-floating-ip.address>"]
        assert rec["zone_id"] == "<id of Designate zone see240014.projects.jetstream-cloud.org.>"
        assert rec["ttl"] == 300
    assert run.output("dns_names") == sorted(records)
    assert "dns_instructions" not in {o.name for o in run.layer.outputs}


def test_explicit_zone_overrides_the_allocation(plan_hub: PlanHub, hub_config: dict[str, Any]) -> None:
    hub_config["dns"] = {"provider": "designate", "zone": "pythia.org.", "ttl": 60}
    hub_config["binderhub"].update(host="binder.pythia.org", hub_host="hub.binder.pythia.org")
    hub_config["support"]["monitoring"]["grafana"]["host"] = "grafana.pythia.org"
    records = [r.inputs for r in plan_hub(hub_config).layer.resources if r.type == RECORD_SET]
    assert {r["name"] for r in records} == {
        "binder.pythia.org.",
        "hub.binder.pythia.org.",
        "grafana.pythia.org.",
    }
    assert {r["zone_id"] for r in records} == {"<id of Designate zone pythia.org.>"}
    assert {r["ttl"] for r in records} == {60}


def test_bring_your_own_dns_creates_no_records_and_says_which(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    hub_config["dns"] = {"provider": "external", "ttl": 600}
    hub_config["binderhub"].update(host="binder.projectpythia.org", hub_host="hub.projectpythia.org")
    run = plan_hub(hub_config)
    assert not [r for r in run.layer.resources if r.type == RECORD_SET]
    assert run.output("dns_records") == [
        {
            "name": "binder.projectpythia.org.",
            "type": "A",
            "ttl": 600,
            "value": "<ingress-floating-ip.address>",
        },
        {"name": "hub.projectpythia.org.", "type": "A", "ttl": 600, "value": "<ingress-floating-ip.address>"},
    ]
    instructions = run.output("dns_instructions")
    assert "binder.projectpythia.org. 600 IN A <ingress-floating-ip.address>" in instructions
    assert "hub.projectpythia.org. 600 IN A <ingress-floating-ip.address>" in instructions
    assert any("dns_instructions" in note for note in run.notes)


def test_cluster_issuer_follows_cert_manager_and_the_acme_choice(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    hub_config["tls"].update(acme_server="staging", acme_email="ops@projectpythia.org")
    run = plan_hub(hub_config)
    issuer = run.resource("cert-manager.io/v1:ClusterIssuer")
    assert issuer.options["depends_on"] == ["cert-manager-release"]
    acme = issuer.inputs["spec"]["acme"]
    assert acme["server"] == "https://acme-staging-v02.api.letsencrypt.org/directory"
    assert acme["email"] == "ops@projectpythia.org"
    assert acme["solvers"] == [{"http01": {"ingress": {"ingressClassName": "traefik"}}}]
    assert issuer.inputs["metadata"]["name"] == "letsencrypt-staging"
    assert run.values()["ingress"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt-staging"
    assert run.values("cert-manager-release")["crds"]["enabled"] is True
    assert any("staging" in note for note in run.notes)


def test_binderhub_waits_for_certificates_ingress_and_credentials(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    release = plan_hub(hub_config).resource(RELEASE, "binderhub-release")
    assert set(release.options["depends_on"]) == {
        "cert-manager-issuer",
        "ingress-release",
        "binderhub-registry-push",
        "binderhub-registry-pull",
        # The core PriorityClass its pods run with (tests/hub/test_support_hygiene.py).
        "support-core-priority",
        "binderhub-builder-policy",
    }


def test_planted_secrets_never_reach_the_plan(plan_hub: PlanHub, hub_config: dict[str, Any]) -> None:
    from jetstream_binderhub.plan.render import render_json, render_text

    hub_config["binderhub"]["registry"]["private"] = True
    run = plan_hub(hub_config, secrets={"registry_password": PASSWORD, "github_token": TOKEN})
    texts = [render_text(run.plan), render_json(run.plan)]
    auth = base64.b64encode(f"projectpythia+binderhub:{PASSWORD}".encode()).decode()
    for text in texts:
        for leaked in (PASSWORD, TOKEN, auth, base64.b64encode(PASSWORD.encode()).decode()):
            assert leaked not in text
    secrets = {r.name: r.inputs for r in run.layer.resources if r.type == SECRET and r.parent == "binderhub"}
    assert set(secrets) == {"binderhub-registry-push", "binderhub-registry-pull", "binderhub-github-token"}
    assert all(s["string_data"] == "[secret]" for s in secrets.values())
    assert secrets["binderhub-registry-pull"]["type"] == "kubernetes.io/dockerconfigjson"
    # The values stay readable: nothing in them is a secret, they only point at the Secrets.
    values = run.values()
    assert "[secret]" not in walk(values)
    assert values["config"]["KubernetesBuildExecutor"]["push_secret"] == "binderhub-registry-push"
    assert values["jupyterhub"]["singleuser"]["image"]["pullSecrets"] == ["binderhub-registry-pull"]
    assert values["extraEnv"]["GITHUB_ACCESS_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "binderhub-github-token",
        "key": "token",
    }


def test_registry_credentials_reach_the_secret_as_docker_config(hub_config: dict[str, Any]) -> None:
    # Under mocks the Secret's content is masked, so check the function that builds it.
    import json

    from jetstream_binderhub.config.hub import parse_hub_stack
    from jetstream_binderhub.hub.values import docker_config_json

    cfg = parse_hub_stack(hub_config)
    reg = cfg.binderhub.registry
    doc = json.loads(docker_config_json(reg.auth_url, reg.username, PASSWORD))
    auth = doc["auths"]["https://quay.io"]["auth"]
    assert base64.b64decode(auth).decode() == f"projectpythia+binderhub:{PASSWORD}"


def test_missing_password_is_planned_as_a_secret_with_the_command(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    run = plan_hub(hub_config)
    push = run.resource(SECRET, "binderhub-registry-push")
    assert push.inputs["string_data"] == "[secret]"
    assert any(
        "pulumi -C binderhub config set --secret registry_password -s jetstream2" in note
        for note in run.notes
    )
    assert not [r for r in run.layer.resources if r.name == "binderhub-github-token"]
    assert "extraEnv" not in run.values()


def test_plain_text_password_is_refused_before_anything_runs(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError) as err:
        plan_hub(hub_config, plain={"jetstream-binderhub-hub:registry_password": PASSWORD})
    assert err.value.lines() == [
        "registry_password: is stored in plain text; remove it and run "
        "`pulumi -C binderhub config set --secret registry_password -s jetstream2`"
    ]
    assert PASSWORD not in str(err.value)


def test_outputs_name_both_urls_the_ip_and_the_names(plan_hub: PlanHub, hub_config: dict[str, Any]) -> None:
    run = plan_hub(hub_config)
    assert run.output("binderhub_url") == "https://binder.see240014.projects.jetstream-cloud.org"
    assert run.output("jupyterhub_url") == "https://hub.see240014.projects.jetstream-cloud.org"
    assert run.output("dns_provider") == "designate"
    assert run.output("letsencrypt") == "production"
    # The one secret output is Grafana's generated admin password.
    assert [o.name for o in run.layer.outputs if o.secret] == ["grafana_admin_password"]


def test_two_plans_in_one_process_do_not_leak(plan_hub: PlanHub, hub_config: dict[str, Any]) -> None:
    first = plan_hub(hub_config).layer
    hub_config["dns"] = {"provider": "external"}
    hub_config["binderhub"].update(host="binder.projectpythia.org", hub_host="hub.projectpythia.org")
    hub_config["support"]["monitoring"]["grafana"]["host"] = "grafana.projectpythia.org"
    second = plan_hub(hub_config).layer
    assert len([r for r in first.resources if r.type == RECORD_SET]) == 3
    assert not [r for r in second.resources if r.type == RECORD_SET]
    # The DNS component, its two records and Grafana's.
    assert len(second.resources) == len(first.resources) - 4


def test_no_token_changes_between_runs(plan_hub: PlanHub, hub_config: dict[str, Any]) -> None:
    # JupyterHub's chart generates its tokens once and reuses them from its Secret; we pass none, so no
    # `pulumi up` rotates them (a new proxy token or cookie secret would log every user out).
    first, second = plan_hub(hub_config).layer, plan_hub(hub_config).layer
    assert first.resources == second.resources
    jupyterhub = first.resource(RELEASE, "binderhub-release").inputs["values"]["jupyterhub"]
    assert "cookieSecret" not in jupyterhub["hub"]
    # Services (Dask Gateway) are registered without a token: the chart generates and keeps theirs too.
    services = jupyterhub["hub"].get("services", {})
    assert all(not {"apiToken", "api_token"} & set(s) for s in services.values()), services
    assert "secretToken" not in jupyterhub["proxy"]


@pytest.mark.parametrize(
    ("secrets", "plain", "expected"),
    [
        ({}, {}, "registry_password: is not set"),
        ({}, {"registry_password": PASSWORD}, "registry_password: is stored in plain text"),
        ({"registry_password": PASSWORD}, {"github_token": TOKEN}, "github_token: is stored in plain text"),
    ],
    ids=["missing", "plain-password", "plain-token"],
)
def test_the_program_itself_refuses_missing_or_plain_secrets(
    hub_config: dict[str, Any], secrets: dict[str, str], plain: dict[str, str], expected: str
) -> None:
    # What `pulumi -C binderhub up` does without the offline planner in front of it.
    with pytest.raises(Exception, match=expected) as err:
        run_hub_program(hub_config, secrets, plain)
    assert "pulumi -C binderhub config set --secret" in str(err.value)
    assert PASSWORD not in str(err.value) and TOKEN not in str(err.value)


def test_a_group_missing_from_the_live_cluster_stops_the_program(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    # `pulumi up` has only the cluster stack's outputs to check placement against.
    outputs = {
        "profile": "jetstream2",
        "cluster_id": "3f1c-magnum-uuid",
        "kubeconfig": "apiVersion: v1",
        "node_group_labels": {"default-worker": "default-worker"},
    }
    with pytest.raises(Exception, match=r"placement\.user_node_group: unknown node group 'user-m3.large'"):
        plan_hub(hub_config, cluster_outputs=outputs)


def test_traefik_keeps_websockets_open_and_client_addresses(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    values = plan_hub(hub_config).values("ingress-release")
    assert values["ports"]["websecure"]["transport"]["respondingTimeouts"] == {
        "readTimeout": 600,
        "idleTimeout": 600,
    }
    # One controller on the shipped site's one-node core group, so no disruption budget to stall a drain.
    assert values["deployment"]["replicas"] == 1
    assert "podDisruptionBudget" not in values
    hub_config["ingress"]["preserve_client_ip"] = False
    service = plan_hub(hub_config).values("ingress-release")["service"]
    assert "externalTrafficPolicy" not in service["spec"]
    assert "loadbalancer.openstack.org/enable-health-monitor" not in service["annotations"]


def test_two_traefik_replicas_need_a_core_group_of_two_nodes(
    plan_hub: PlanHub, hub_config: dict[str, Any], cluster_config: dict[str, Any]
) -> None:
    hub_config["ingress"]["replicas"] = 2
    with pytest.raises(ConfigError) as err:
        plan_hub(hub_config)
    assert [line.split(":", 1)[0] for line in err.value.lines()] == ["ingress.replicas"]
    assert "'default-worker' of at most 1 node(s)" in err.value.lines()[0]
    cluster_config["cluster"]["default_worker"]["max_count"] = 2
    values = plan_hub(hub_config, cluster=cluster_config).values("ingress-release")
    assert values["podDisruptionBudget"] == {"enabled": True, "maxUnavailable": 1}
    term = values["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    # The chart's selector labels (traefik-helm-chart traefik/templates/_helpers.tpl).
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "traefik",
        "app.kubernetes.io/instance": "traefik-traefik",
    }


def test_shipped_site_gives_user_pods_the_quay_pull_secret(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    run = plan_hub(hub_config)
    pull = run.resource(SECRET, "binderhub-registry-pull")
    assert pull.inputs["type"] == "kubernetes.io/dockerconfigjson"
    assert pull.inputs["metadata"]["name"] == "binderhub-registry-pull"
    assert run.values()["jupyterhub"]["singleuser"]["image"] == {"pullSecrets": ["binderhub-registry-pull"]}


def test_a_secret_value_copied_into_a_plain_setting_is_still_masked(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    from jetstream_binderhub.plan.render import render_json, render_text

    # The registry password pasted into a plain setting as well: its value came from a Pulumi secret.
    hub_config["binderhub"]["banner_message"] = f"Contact us (debug: {PASSWORD})"
    run = plan_hub(hub_config, secrets={"registry_password": PASSWORD})
    for text in (render_text(run.plan), render_json(run.plan)):
        assert PASSWORD not in text
    banner = run.values()["config"]["BinderHub"]["banner_message"]
    assert banner == "Contact us (debug: [secret])"


@pytest.mark.parametrize("kubeconfig", ["", "  \n", None])
def test_an_empty_kubeconfig_never_reaches_the_provider(
    plan_hub: PlanHub, hub_config: dict[str, Any], kubeconfig: str | None
) -> None:
    # pulumi-kubernetes takes "" (and its Python SDK None) as unset and loads the operator's own
    # $KUBECONFIG / ~/.kube/config: the program stops before any Kubernetes resource could go there.
    outputs = {
        "profile": "jetstream2",
        "cluster_id": "3f1c-magnum-uuid",
        "kubeconfig": kubeconfig,
        "node_group_labels": {"default-worker": "default-worker", "user-m3.large": "user-m3-large"},
    }
    with pytest.raises(Exception, match=r"the cluster stack's `kubeconfig` output is empty") as err:
        plan_hub(hub_config, cluster_outputs=outputs)
    assert "refusing to fall back to $KUBECONFIG" in str(err.value)


def test_a_cluster_without_a_kubeconfig_exports_none_not_an_empty_string(
    plan_hub: PlanHub,
    hub_config: dict[str, Any],
    cluster_config: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pulumi.runtime import rpc

    from jetstream_binderhub.naming import CLUSTER_TYPE
    from jetstream_binderhub.plan import runner

    # What the provider reports for a cluster whose credentials Magnum has not produced.
    monkeypatch.setitem(
        runner.COMPUTED, CLUSTER_TYPE, lambda name, inputs: {"kubeconfig": rpc.wrap_rpc_secret({})}
    )
    import json

    from jetstream_binderhub.config.stackfile import CLUSTER_PROJECT
    from jetstream_binderhub.infra.program import cluster_program

    config = {
        f"{CLUSTER_PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v)
        for k, v in cluster_config.items()
    }
    _, outputs = runner.run_layer(
        cluster_program, layer="cluster", project=CLUSTER_PROJECT, stack="jetstream2", config=config
    )
    assert outputs.get("kubeconfig") is None
    # ...and the BinderHub layer reading that stack stops with words, not a KeyError.
    with pytest.raises(Exception, match=r"the cluster stack's `kubeconfig` output is empty"):
        plan_hub(hub_config)


def test_builds_are_fenced_from_the_metadata_service_and_private_networks(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    import ipaddress

    run = plan_hub(hub_config)
    policy = run.resource("kubernetes:networking.k8s.io/v1:NetworkPolicy", "binderhub-builder-policy")
    assert policy.options.get("provider") == "cluster-k8s"
    assert policy.inputs["metadata"] == {"name": "binderhub-builders", "namespace": "binderhub"}
    spec = policy.inputs["spec"]
    # The chart's dind/pink daemonset pods and BinderHub's build pods.
    assert spec["podSelector"]["matchExpressions"] == [
        {"key": "component", "operator": "In", "values": ["image-builder", "binderhub-build"]}
    ]
    assert spec["policyTypes"] == ["Ingress", "Egress"] and spec["ingress"] == []
    dns, world = spec["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    [block] = world["to"]
    assert "ports" not in world and block["ipBlock"]["cidr"] == "0.0.0.0/0"
    fenced = [ipaddress.ip_network(c) for c in block["ipBlock"]["except"]]
    for address in ("169.254.169.254", "10.0.0.1", "172.24.0.10", "192.168.1.5"):
        assert any(ipaddress.ip_address(address) in net for net in fenced), address
    assert not any(ipaddress.ip_address("149.165.150.1") in net for net in fenced)
    hub_config["binderhub"]["builder"]["network_policy"] = False
    layer = plan_hub(hub_config).layer
    assert not [r for r in layer.resources if r.type.endswith("NetworkPolicy") and "builder" in r.name]


def test_state_delete_of_the_provider_keeps_the_public_address_and_dns(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    # docs/operations.md recovers from a replaced cluster with `pulumi state delete --target-dependents`
    # on the top-level provider `cluster-k8s`: that must take every Kubernetes resource and nothing else.
    from jetstream_binderhub.config.stackfile import HUB_PROJECT

    layer = plan_hub(hub_config).layer
    provider = layer.resource("pulumi:providers:kubernetes", "cluster-k8s")
    assert not provider.options.get("parent")
    assert HUB_PROJECT == "jetstream-binderhub-hub"
    k8s_names = {r.name for r in layer.resources if r.custom and r.type.startswith("kubernetes:")}
    for r in layer.resources:
        if r.type.startswith("openstack:"):
            assert r.options.get("provider") != "cluster-k8s", r.name
            assert not set(r.options.get("depends_on") or []) & k8s_names, r.name
    assert {r.type for r in layer.resources if r.type.startswith("openstack:")} >= {FLOATING_IP, RECORD_SET}
