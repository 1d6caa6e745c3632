"""Real throwaway PostgreSQL and Redis servers for tests (Debian's `postgresql` and `redis-server`)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from tests.helpers import free_port

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
