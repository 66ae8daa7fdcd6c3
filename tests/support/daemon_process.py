"""The `snapshotter` console script as a process, for tests that signal or kill it."""

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import urllib3
import yaml
from sqlalchemy import Engine

from tests.support.apiserver import TestCluster

SNAPSHOTTER = Path(sys.executable).parent / "snapshotter"


def database_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


class DaemonProcess:
    def __init__(
        self,
        kube: TestCluster,
        namespace: str,
        engine: Engine,
        tmp_path: Path,
        *,
        name: str = "snapshotter",
        env: dict[str, str] | None = None,
        executable: Path = SNAPSHOTTER,  # another version's console script
        **settings: Any,
    ) -> None:
        self.engine = engine
        self.executable = executable
        self.config = tmp_path / f"{name}.yaml"
        config = {
            "interval_seconds": 60,
            "namespaces": [namespace],
            "kubernetes": {"kubeconfig": str(kube.kubeconfig())},
            "workflow_configs": [{"name": "all-jobs", "runner_set_name": ""}],
            "metrics": {"port": 0},
            **settings,
        }
        self.config.write_text(yaml.safe_dump(config))
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SNAPSHOTTER_")},
            "SNAPSHOTTER_DATABASE__URL": database_url(engine),
            **(env or {}),
        }
        self.log = tmp_path / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._earlier_starts = 0

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.executable), "--config", str(self.config), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def start(self) -> None:
        self._earlier_starts = self._starts()
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                [str(self.executable), "--config", str(self.config)], env=self.env, stderr=out
            )

    def _starts(self) -> int:
        return self.log.read_text().count("effective config") if self.log.exists() else 0

    def started(self) -> bool:
        """Whether the latest process (not an earlier one) finished its start-up."""
        if self._starts() <= self._earlier_starts:
            return False
        return "daemon started" in self.log.read_text().rsplit("effective config", 1)[-1]

    def signal(self, signum: signal.Signals) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(timeout=60)

    def kill(self) -> None:
        """SIGKILL: no shutdown at all."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def get(self, path: str) -> tuple[int, str]:
        """An HTTP GET on the daemon's metrics port: (status, body); (0, error) when it
        does not answer."""
        port = yaml.safe_load(self.config.read_text())["metrics"]["port"]
        try:
            response = urllib3.request(
                "GET", f"http://127.0.0.1:{port}{path}", timeout=5, retries=False
            )
        except urllib3.exceptions.HTTPError as e:
            return 0, str(e)
        return response.status, response.data.decode()

    def log_times(self, text: str) -> list[datetime]:
        """When the daemon logged lines containing `text` (its own UTC timestamps)."""
        times = []
        for line in self.log.read_text().splitlines():
            if text in line:
                stamp = line.split(" ", 1)[0].rstrip("Z")
                times.append(datetime.fromisoformat(stamp).replace(tzinfo=UTC))
        return times
