"""A real `byolctl serve` child process on ephemeral loopback ports, and a tiny REST client for it."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

from common import CLI, REPO, log

BANNER = re.compile(r"byol coordinator: REST (\S+), gRPC (\S+), telemetry (\S+)")


class Serve:
    """`node dist/.../main.js serve` with its own home folder; logs go to `log_path`."""

    def __init__(self, log_path: str, *, launcher: str = "local", agent_token: str = "",
                 env: dict | None = None, start_timeout_s: float = 60.0) -> None:
        self.home = tempfile.mkdtemp(prefix="byol-bench-home-")
        args = ["node", CLI, "serve", "--home", self.home, "--host", "127.0.0.1", "--port", "0",
                "--grpc-host", "127.0.0.1", "--grpc-port", "0", "--telemetry-port", "0", "--launcher", launcher]
        self.log_file = open(log_path, "w", encoding="utf-8")
        self.proc = subprocess.Popen(args, cwd=REPO, stdout=self.log_file, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "BYOL_LOG_LEVEL": "info", **(env or {}),
                                          **({"BYOL_AGENT_TOKEN": agent_token} if agent_token else {})})
        self.url = self.grpc = self.telemetry = ""
        deadline = time.monotonic() + start_timeout_s
        for line in self.proc.stderr:  # the banner is the first stderr line once both servers listen
            self.log_file.write(line)
            m = BANNER.search(line)
            if m:
                self.url, self.grpc, self.telemetry = m.groups()
                break
            if time.monotonic() > deadline:
                break
        if not self.url:
            self.stop()
            raise RuntimeError(f"byolctl serve did not start (see {log_path})")
        threading.Thread(target=self._pump, daemon=True).start()
        log.info("coordinator up: REST %s, gRPC %s (pid %d)", self.url, self.grpc, self.proc.pid)

    def _pump(self) -> None:
        for line in self.proc.stderr:
            self.log_file.write(line)

    def request(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"content-type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{method} {path}: HTTP {e.code}: {e.read().decode(errors='replace')}") from None

    def submit(self, doc: dict) -> dict:
        return self.request("POST", "/v1/jobs", doc)

    def job(self, job_id: str) -> dict:
        return self.request("GET", f"/v1/jobs/{job_id}")

    def metrics(self, job_id: str) -> list[dict]:
        """Every metric point; the server answers at most 10000 per page."""
        out: list[dict] = []
        while True:
            since = out[-1]["step"] + 1 if out else 0
            page = self.request("GET", f"/v1/jobs/{job_id}/metrics?sinceStep={since}&limit=10000")
            out += page
            if len(page) < 10000:
                return out

    def wait_state(self, job_id: str, states: tuple[str, ...], timeout_s: float, poll_s: float = 0.5) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            j = self.job(job_id)
            if j["state"] in states:
                return j
            if j["state"] in ("FAILED", "CANCELLED") or time.monotonic() > deadline:
                raise RuntimeError(f"job {job_id} is {j['state']} ({j.get('message')}), waited for {states}")
            time.sleep(poll_s)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                log.warning("byolctl serve (pid %d) ignored SIGTERM for 30 s; killing it", self.proc.pid)
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()
        subprocess.run(["rm", "-rf", self.home], check=False)
