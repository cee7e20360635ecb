"""What the offline plan answers for this layer's cloud-computed values and data sources.

Each answer is a placeholder naming where the real value will come from, so a plan reads
`records = ["<ingress-floating-ip.address>"]` rather than an invented address.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jetstream_binderhub.plan.runner import placeholder, register_call, register_computed

FLOATING_IP = "openstack:networking/floatingIp:FloatingIp"
GET_DNS_ZONE = "openstack:dns/getDnsZone:getDnsZone"


def _floating_ip(name: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
    return {"address": placeholder(name, "address")}


def _dns_zone(args: Mapping[str, Any]) -> dict[str, Any]:
    zone = args.get("name", "?")
    return {"id": f"<id of Designate zone {zone}>", "name": zone}


register_computed(FLOATING_IP, _floating_ip)
register_call(GET_DNS_ZONE, _dns_zone)
