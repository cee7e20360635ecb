"""Measure what users feel: `--help` latency, `plan jetstream2` time and peak memory, and how plan time
grows with the number of node groups.

A script, not a timed test: timings on a shared CI machine are noise as assertions. Absolute times
differ between machines, so each target is a ratio to a baseline measured in the same run, the two
commands alternated pair by pair (a machine that slows down mid-run slows both):

- `--help`: at most 15x a bare Python start-up (`python -c pass`);
- `plan jetstream2` (both layers): at most 1.25x the time of a process that imports the modules it
  needs and no more (pulumi, the pulumi-openstack and pulumi-kubernetes resource types its programs
  declare, pydantic's model machinery, typer, rich, jsonschema, yaml) and exits, and under 200 MB peak
  memory. The plan skips the interpreter's teardown when it is done; its ratio to a floor that skips
  it too is printed beside, for information;
- the same plan with 10 and 50 extra node groups, as a ratio to the shipped site (should stay close
  to flat: per-resource work is small next to the fixed imports).

Ratios use CPU time (user + system), which a busy machine disturbs far less than wall time; wall
medians are printed beside them.

    python scripts/benchmark.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "jetstream_binderhub.cli"]

# What the plan cannot avoid importing. pulumi-openstack and pulumi-kubernetes load submodules lazily,
# so the floor touches each resource type the programs declare; `check_floor` says when a program
# starts using one that is not listed here.
FLOOR_IMPORTS = """
import pulumi, pulumi.runtime, jsonschema, yaml, typer, rich
import pydantic.main, pydantic.fields, pydantic.types, pydantic.functional_validators
import pulumi_openstack as o, pulumi_kubernetes as k
o.containerinfra.ClusterTemplate, o.containerinfra.Cluster, o.containerinfra.NodeGroup
o.networking.FloatingIp, o.dns.RecordSet, o.dns.get_dns_zone
k.Provider, k.core.v1.Namespace, k.core.v1.Secret, k.helm.v3.Release, k.apiextensions.CustomResource
k.meta.v1.Status  # CustomResource loads the meta/v1 types on first use
k.networking.v1.NetworkPolicy, k.scheduling.v1.PriorityClass
import pulumi_random as r; r.RandomPassword
"""
FLOOR = [sys.executable, "-c", FLOOR_IMPORTS]
FLOOR_NO_TEARDOWN = [sys.executable, "-c", FLOOR_IMPORTS + "import os; os._exit(0)\n"]
PROVIDER_PACKAGES = ("pulumi_openstack.", "pulumi_kubernetes.", "pulumi_random.")

TARGET_HELP_RATIO = 15.0
TARGET_PLAN_RATIO = 1.25
TARGET_PLAN_MB = 200.0


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float
    peak_mb: float


# A user's Python writes bytecode caches, so only the first run compiles the project's modules; with
# PYTHONDONTWRITEBYTECODE set (as some CI environments do) every run would, and the plan would be
# measured with a cost no user pays.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_once(cmd: list[str], cwd: Path = ROOT) -> Sample:
    """Wall seconds, CPU seconds and peak resident MB of one run of `cmd`."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        sys.exit(f"{' '.join(cmd)} failed:\n{err}")
    # ru_maxrss is in KiB on Linux
    return Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def paired(a: list[str], b: list[str], runs: int, cwd: Path = ROOT) -> tuple[list[Sample], list[Sample]]:
    for cmd in (a, b):  # warm the bytecode and file caches; not counted
        run_once(cmd, cwd)
    pairs = [(run_once(a, cwd), run_once(b, cwd)) for _ in range(runs)]
    return [x for x, _ in pairs], [y for _, y in pairs]


def ratio(a: list[Sample], b: list[Sample]) -> float:
    return statistics.median(x.cpu / y.cpu for x, y in zip(a, b, strict=True))


def med(samples: list[Sample], attr: str) -> float:
    return statistics.median(getattr(s, attr) for s in samples)


def check_floor() -> list[str]:
    """Provider modules the plan imports that the floor does not: the floor list is stale."""
    probe = (
        "import sys, contextlib, io\n"
        "from importlib.util import _LazyModule\n"
        "def loaded():\n"
        f"    return {{n for n, m in list(sys.modules.items()) if n.startswith({PROVIDER_PACKAGES!r})"
        " and not isinstance(m, _LazyModule)}\n"
        f"exec({FLOOR_IMPORTS!r})\n"
        "before = loaded()\n"
        "from jetstream_binderhub.cli import app\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        app(['plan', 'jetstream2'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('\\n'.join(sorted(loaded() - before)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=ENV, capture_output=True, text=True, check=True
    )
    # Resource modules only (a class per module); helpers such as _inputs come with their package.
    return [m for m in out.stdout.split() if not m.rsplit(".", 1)[-1].startswith("_")]


def site_with_groups(extra: int, dest: Path) -> Path:
    """A copy of the project whose jetstream2 site has `extra` more autoscaled node groups."""
    for name in ("Pulumi.yaml", "Pulumi.jetstream2.yaml"):
        shutil.copy(ROOT / name, dest / name)
    for name in ("infra", "binderhub"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    path = dest / "Pulumi.jetstream2.yaml"
    doc = yaml.safe_load(path.read_text())
    cluster = doc["config"]["jetstream-binderhub:cluster"]
    cluster["node_groups"] += [
        {"name": f"extra-{i}", "flavor": "m3.quad", "min_count": 1, "max_count": 2, "autoscale": True}
        for i in range(extra)
    ]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark the jetstream-binderhub CLI.")
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs

    stale = check_floor()
    if stale:
        print(f"note: the plan imports provider modules the floor lacks (add them): {', '.join(stale)}")

    print(f"{'measure':<34} {'wall s':>7} {'cpu s':>7} {'peak MB':>8} {'ratio':>6}  target")
    help_, bare = paired([*CLI, "--help"], [sys.executable, "-c", "pass"], runs)
    r = ratio(help_, bare)
    print(f"{'python -c pass':<34} {med(bare, 'wall'):>7.3f} {med(bare, 'cpu'):>7.3f}")
    print(
        f"{'--help':<34} {med(help_, 'wall'):>7.3f} {med(help_, 'cpu'):>7.3f} {max(s.peak_mb for s in help_):>8.1f}"
        f" {r:>6.2f}  <= {TARGET_HELP_RATIO:g}x bare start-up {verdict(r <= TARGET_HELP_RATIO)}"
    )

    plan, floor = paired([*CLI, "plan", "jetstream2"], FLOOR, runs)
    r = ratio(plan, floor)
    peak = max(s.peak_mb for s in plan)
    print(
        f"{'import floor':<34} {med(floor, 'wall'):>7.3f} {med(floor, 'cpu'):>7.3f} {max(s.peak_mb for s in floor):>8.1f}"
    )
    # The plan leaves without the interpreter's teardown (about 0.3 s of CPU for these modules); the same
    # floor without it shows how much of the plan is its own work.
    lean = [run_once(FLOOR_NO_TEARDOWN) for _ in range(runs)]
    own = statistics.median(x.cpu / y.cpu for x, y in zip(plan, lean, strict=True))
    print(
        f"{'import floor, no teardown':<34} {med(lean, 'wall'):>7.3f} {med(lean, 'cpu'):>7.3f}"
        f" {max(s.peak_mb for s in lean):>8.1f} {own:>6.2f}  (plan / this, for information)"
    )
    ok = r <= TARGET_PLAN_RATIO and peak < TARGET_PLAN_MB
    print(
        f"{'plan jetstream2 (both layers)':<34} {med(plan, 'wall'):>7.3f} {med(plan, 'cpu'):>7.3f} {peak:>8.1f}"
        f" {r:>6.2f}  <= {TARGET_PLAN_RATIO:g}x floor, < {TARGET_PLAN_MB:g} MB {verdict(ok)}"
    )

    plan_cmd = [*CLI, "plan", "jetstream2"]
    for extra in (10, 50):
        with tempfile.TemporaryDirectory() as tmp:
            project = site_with_groups(extra, Path(tmp))
            run_once(plan_cmd, project)
            pairs = [(run_once(plan_cmd, project), run_once(plan_cmd)) for _ in range(max(2, runs // 2))]
        big = [x for x, _ in pairs]
        groups = f"plan with {1 + extra} node groups"
        print(
            f"{groups:<34} {med(big, 'wall'):>7.3f} {med(big, 'cpu'):>7.3f} {max(s.peak_mb for s in big):>8.1f}"
            f" {statistics.median(x.cpu / y.cpu for x, y in pairs):>6.2f}  x the shipped site (1 group)"
        )


if __name__ == "__main__":
    main()
