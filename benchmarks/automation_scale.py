"""Image automation at scale (issue 14): N automated HelmReleases over M
images, against a real `docker-registry` and a real Git remote.

Prints, per scan and pass: registry requests (by kind), wall time, and the
process's RSS. The HelmReleases are fed to the Automator from the files
themselves (no cluster): what is measured is the automation's own cost,
which grows with images, not releases.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.automation_scale --releases 500 --images 50
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from helm_operator.automation.automator import Automator
from helm_operator.automation.gitwrite import GitTarget, GitWriter
from helm_operator.automation.registry import RegistryClient
from tests.integration.images import Pusher
from tests.integration.registry import start_registry
from tests.integration.test_automation_never_back import release_yaml


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main(releases: int, images: int, tags: int, scans: int, rate: float) -> None:
    with tempfile.TemporaryDirectory(prefix="automation-scale-") as tmp:
        root = Path(tmp)
        registry = start_registry(root / "registry")
        try:
            pusher = Pusher(registry.host)
            started = time.monotonic()
            for i in range(images):
                for day in range(tags):
                    pusher.push_image(f"team/img{i:03d}", f"1.0.{day}",
                                      datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(days=day))
            print(f"pushed {images} images x {tags} tags in {time.monotonic() - started:.1f}s")
            work = root / "work"
            subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
            (work / "releases").mkdir()
            objects: list[dict[str, Any]] = []
            for r in range(releases):
                text = release_yaml("bench", f"app{r:04d}", f"{registry.host}/team/img{r % images:03d}", "1.0.0",
                                    "glob:1.0.*")
                (work / "releases" / f"app{r:04d}.yaml").write_text(text)
                objects.append(yaml.safe_load(text))
            _git(work, "add", "-A")
            _git(work, "-c", "user.name=seed", "-c", "user.email=seed@example.com", "commit", "-qm", "seed")
            remote = root / "remote.git"
            subprocess.run(["git", "clone", "-q", "--bare", str(work), str(remote)], check=True)

            async def listed() -> list[dict[str, Any]]:
                return objects

            async def no_event(*_: Any) -> None:
                return None

            client = RegistryClient(plain_http_hosts={registry.host}, rate_limit_per_second=rate)
            writer = GitWriter(GitTarget(f"file://{remote}", "main", ("releases",), "Bot", "bot@example.com"),
                               root / "checkout")
            automator = Automator(listed, writer, client, no_event)
            print(f"{releases} automated HelmReleases over {images} images ({releases // images} per image), "
                  f"glob filter (build times needed), {rate:g} requests/s per registry, RSS before {_rss_mib():.0f} MiB")
            try:
                for n in range(scans):
                    before = dict(client.requests)
                    t0 = time.monotonic()
                    scan = await automator.scan()
                    t1 = time.monotonic()
                    await automator.run_pass(scan)
                    t2 = time.monotonic()
                    made = {k: v - before.get(k, 0) for k, v in client.requests.items() if v - before.get(k, 0)}
                    commits = _git(work, "ls-remote", str(remote), "main")
                    print(f"scan {n + 1}: {sum(made.values())} registry requests {made}; scan {t1 - t0:.2f}s, "
                          f"pass {t2 - t1:.2f}s; RSS {_rss_mib():.0f} MiB; remote main {commits.split()[0][:12]}")
            finally:
                await client.close()
            count = subprocess.run(["git", "--git-dir", str(remote), "rev-list", "--count", "main"],
                                   check=True, capture_output=True, text=True).stdout.strip()
            print(f"commits on main after {scans} passes: {int(count) - 1} (besides the seed)")
        finally:
            registry.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--releases", type=int, default=500)
    p.add_argument("--images", type=int, default=50)
    p.add_argument("--tags", type=int, default=3, help="tags per image (1.0.0 .. 1.0.N-1)")
    p.add_argument("--scans", type=int, default=3)
    p.add_argument("--rate", type=float, default=10.0, help="registry requests per second (the operator's default)")
    args = p.parse_args()
    asyncio.run(main(args.releases, args.images, args.tags, args.scans, args.rate))
