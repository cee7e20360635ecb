"""`up` checks the allocation first (ops.preflight); these tests drive `up` against fake stacks with no
cloud behind them, so its preflight answers as a cloud with room would. tests/ops/test_preflight.py
drives the real one against a stand-in cloud, `up`'s use of it included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def cloud_with_room(monkeypatch: pytest.MonkeyPatch) -> None:
    from jetstream_binderhub.ops import preflight

    def passing(site: str, project_dir: Path, **_: Any) -> preflight.PreflightResult:
        from jetstream_binderhub.plan.site import load_cluster_file

        load_cluster_file(project_dir, site)  # an unknown site is still refused, as the real one does
        need = preflight.Need(
            instances=0,
            cores=0,
            ram_mb=0,
            volumes=0,
            gigabytes=0,
            floating_ips=0,
            load_balancers=0,
            security_groups=0,
            explanation={},
        )
        return preflight.PreflightResult(site=site, project_id="test", auth_url="", need=need, checks=[])

    monkeypatch.setattr(preflight, "preflight_site", passing)
