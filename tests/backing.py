"""Real throwaway servers for tests: PostgreSQL and Redis (Debian's `postgresql` and `redis-server`),
S3 (moto in server mode) and a local Ray cluster."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from tests.helpers import START_DEADLINE, Server, free_port, start_server

INSTALL = "install them with: apt-get install postgresql redis-server (.ci/run does)"


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root; there, run it as the `postgres` user the package made."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@dataclass
class Postgres:
    """One cluster on a free loopback port; `database()` makes a fresh database per caller."""

    folder: Path
    port: int

    def database(self) -> str:
        name = f"easel_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:  # fmt: skip
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        bin_dir = _pg_bin()
        subprocess.run(_as_postgres([f"{bin_dir}/pg_ctl", "-D", str(self.folder), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)


def _pg_bin() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError(f"PostgreSQL is not installed; {INSTALL}")
    return str(Path(found[-1]).parent)


def start_postgres(folder: Path) -> Postgres:
    bin_dir = _pg_bin()
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        for parent in folder.parents:  # pytest's folders are 0700: let postgres pass through them
            parent.chmod(parent.stat().st_mode | 0o001)
    data = folder / "data"
    initdb = [
        f"{bin_dir}/initdb",
        "-D",
        str(data),
        "-U",
        "postgres",
        "--auth=trust",
        "--no-sync",
        "-E",
        "UTF8",
    ]
    subprocess.run(_as_postgres(initdb), check=True, capture_output=True, timeout=120)
    port = free_port()
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
    start = [f"{bin_dir}/pg_ctl", "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"]
    subprocess.run(_as_postgres(start), check=True, capture_output=True, timeout=120)
    return Postgres(data, port)


@dataclass
class Redis:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def start_redis() -> Redis:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(f"redis-server is not installed; {INSTALL}")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            redis.Redis(port=port).ping()
            return Redis(process, port)
        except redis.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("redis-server did not start")


#: Credentials moto accepts; set for every S3 client the tests make and the servers they start.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class S3:
    """A moto S3 server on a loopback port (a real HTTP S3 API), with one bucket."""

    server: Any
    url: str
    bucket: str

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing",
                            config=Config(signature_version="s3v4"))  # fmt: skip

    def listed(self) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in listed.get("Contents", ()))

    def stop(self) -> None:
        self.server.stop()


def start_s3(bucket: str = "easel-images") -> S3:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    s3 = S3(server, f"http://127.0.0.1:{port}", bucket)
    s3.client().create_bucket(Bucket=bucket)
    return s3


#: What every process of the test Ray cluster gets: no usage stats, no token (a loopback cluster
#: of one test session; docs/scale-out.md says to keep Ray's token auth on in production).
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


@dataclass
class RayCluster:
    """A local Ray head with logical resources (8 CPUs, 2 GPUs), and the port Serve answers on."""

    process: subprocess.Popen[bytes]
    address: str
    serve_port: int
    folder: Path

    def logged(self) -> str:
        """Everything the cluster's workers wrote to stderr (easel's log lines in replicas)."""
        return "".join(
            p.read_text(errors="replace") for p in sorted(self.folder.glob("session_latest/logs/*.err"))
        )

    def calls(self, deployment: str, app: str = "easel") -> dict[str, int]:
        """Replica id -> how many orders (`run` or `answer` calls) each replica of a deployment took."""
        logs = self.folder.glob(f"session_latest/logs/serve/replica_{app}_{deployment}_*.log")
        calls = re.compile(r"CALL (run|answer) ")
        return {p.stem.rsplit("_", 1)[1]: len(calls.findall(p.read_text(errors="replace"))) for p in logs}

    def stop(self) -> None:
        self.process.terminate()  # `ray start --block` stops what it started
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_ray() -> RayCluster:
    import tempfile

    # Ray's socket paths must stay short: a folder of its own directly under /tmp.
    folder = Path(tempfile.mkdtemp(prefix="easel-ray-", dir="/tmp"))
    port = free_port()
    ray = Path(sys.executable).with_name("ray")
    cmd = [str(ray), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
           "--num-cpus=8", "--num-gpus=2", "--include-dashboard=false", "--disable-usage-stats",
           f"--temp-dir={folder}", "--object-store-memory=300000000"]  # fmt: skip
    log = folder / "head.log"
    process = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                               env={**os.environ, **RAY_ENV})  # fmt: skip
    deadline = time.monotonic() + 300
    while "Ray runtime started" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the Ray head did not start: {log.read_text()[-3000:]}")
        time.sleep(0.1)
    return RayCluster(process, f"127.0.0.1:{port}", free_port(), folder)


def start_ray_server(
    tmp: Path, config: str, cluster: RayCluster, env: dict[str, str] | None = None
) -> Server:
    """`easel serve --ray` on the session's cluster, on the port its Serve answers on. One at a time:
    a module's server is stopped (its application removed) before the next module starts one."""
    server = start_server(tmp, config, env={**RAY_ENV, **(env or {})},
                          args=("--ray", "--ray-address", cluster.address),
                          port=cluster.serve_port, grace=120)  # fmt: skip
    deadline = time.monotonic() + START_DEADLINE
    while "easel on Ray Serve is ready" not in server.log.read_text(errors="replace"):  # every replica runs
        if server.process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"easel serve --ray did not get ready: {server.log.read_text()[-5000:]}")
        time.sleep(0.1)
    return server
