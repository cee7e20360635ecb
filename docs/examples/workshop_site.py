"""Create a workshop BinderHub on Jetstream2 from Python, preview it, and print its URL.

No stack files to copy: the site is built from typed config objects. Its stacks are created on first
use (state in ~/.jetstream-binderhub/state unless PULUMI_BACKEND_URL says otherwise) and run the same
programs as `pulumi up` in a checkout of this repository.

    export OS_CLOUD=openstack                      # or source an application credential openrc
    export PULUMI_CONFIG_PASSPHRASE_FILE=~/.config/jetstream-binderhub/passphrase
    export REGISTRY_PASSWORD=...                   # the Quay robot account's token
    python docs/examples/workshop_site.py          # preview only
    python docs/examples/workshop_site.py --up     # create it (the Magnum cluster alone takes 10+ minutes)

Every failure is one line and a non-zero exit (no Pulumi CLI, no credentials, a locked stack, ...).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from jetstream_binderhub.automation import ConsoleProgress, Site
from jetstream_binderhub.config.cluster import ClusterConfig, ClusterStackConfig, DefaultWorker, NodeGroup
from jetstream_binderhub.config.hub import (
    BinderHubConfig,
    DnsConfig,
    HubStackConfig,
    Placement,
    RegistryConfig,
    TlsConfig,
)
from jetstream_binderhub.errors import ConfigError, JetstreamBinderHubError

ALLOCATION = "cis230085"  # the ACCESS allocation: it names the Designate zone
ZONE = f"{ALLOCATION}.projects.jetstream-cloud.org"


def workshop_site(name: str = "workshop", *, users: int = 40, **site_options: Any) -> Site:
    """A site sized for `users` concurrent attendees: about 14 users per m3.large at 4 GB each."""
    nodes = max(1, -(-users // 14))  # ceiling division
    cluster = ClusterStackConfig(
        profile="jetstream2",
        cluster=ClusterConfig(
            name=f"{name}-binder",
            default_worker=DefaultWorker(flavor="m3.quad", min_count=1, max_count=1),
            node_groups=(
                NodeGroup(
                    name="user-m3.large", flavor="m3.large", min_count=1, max_count=nodes, autoscale=nodes > 1
                ),
            ),
        ),
    )
    hub = HubStackConfig(
        placement=Placement(core_node_group="default-worker", user_node_group="user-m3.large"),
        dns=DnsConfig(provider="designate", allocation=ALLOCATION),
        tls=TlsConfig(acme_email="projectpythia@ucar.edu"),
        binderhub=BinderHubConfig(
            host=f"{name}.{ZONE}",
            hub_host=f"{name}-hub.{ZONE}",
            registry=RegistryConfig(
                provider="quay",
                username="projectpythia+binderhub",
                image_prefix=f"quay.io/projectpythia/{name}-",
            ),
        ),
    )
    secrets = (
        {"registry_password": os.environ["REGISTRY_PASSWORD"]} if os.environ.get("REGISTRY_PASSWORD") else {}
    )
    return Site.from_config(name, cluster=cluster, hub=hub, hub_secrets=secrets, **site_options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--name", default="workshop")
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--up", action="store_true", help="apply, not only preview")
    args = parser.parse_args(argv)

    progress = ConsoleProgress()
    try:
        site = workshop_site(args.name, users=args.users, progress=progress)
        result = site.up() if args.up else site.preview()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except JetstreamBinderHubError as exc:
        for line in exc.error_lines or [str(exc)]:  # several missing pieces: one line each
            print(f"error: {line}", file=sys.stderr)
        return exc.exit_code
    finally:
        progress.close()

    for layer, counts in result.counts.items():
        changes = ", ".join(f"{n} {op}" for op, n in counts.items() if n and op != "same") or "no changes"
        print(f"{layer}: {changes}")
    for note in result.notes:
        print(f"note: {note}")
    host = f"https://{args.name}.{ZONE}"
    if args.up:
        print(f"BinderHub: {site.url() or host}")
    else:
        print(f"BinderHub will be at {host} (run with --up to create it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
