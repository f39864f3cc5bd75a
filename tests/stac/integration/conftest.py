"""pgstac integration fixture: PostgreSQL + PostGIS + pgstac + stac-fastapi-pgstac on loopback ports.

Runs only when asked (``pytest -m integration``, or ``TERRAPIPE_INTEGRATION=1``)
and when ``tests/stac/integration/setup_pgstac.sh`` has installed the
services (``PGSTAC_VENV``, default ``/tmp/pgstac-venv``); otherwise the tests
are skipped with the reason. The session fixture makes a throw-away database
cluster in a tmp folder, starts PostgreSQL on a free loopback port (as the
``postgres`` user when run as root: PostgreSQL refuses root), runs
``pypgstac migrate``, loads the sample world's collections and items with
``pypgstac load``, starts ``uvicorn stac_fastapi.pgstac.app:create_app
--factory`` on another free port, waits until its landing page answers, and
at the end stops uvicorn by pid and PostgreSQL with ``pg_ctl stop``.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from terrapipe.datasets import SampleWorld
from terrapipe.stac.server import free_port
from tests.servers.process import stop_process


def _wanted(config: pytest.Config) -> bool:
    expression = str(config.getoption("-m") or "")
    return ("integration" in expression and "not integration" not in expression) or bool(
        os.environ.get("TERRAPIPE_INTEGRATION")
    )


def _pg_bin() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists() and Path(candidate, "pg_ctl").exists():
            return Path(candidate)
    return None


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def _run(command: list[str], log: Path, env: dict[str, str] | None = None) -> None:
    with log.open("ab") as out:
        out.write(f"$ {' '.join(command)}\n".encode())
        out.flush()
        done = subprocess.run(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=120, check=False
        )
    if done.returncode != 0:
        pytest.fail(f"{command[0]} failed ({done.returncode}); log: {log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def pgstac_api(
    request: pytest.FixtureRequest, sample_world: SampleWorld, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """URL of a stac-fastapi-pgstac API loaded with the sample world."""
    if not _wanted(request.config):
        pytest.skip(
            "integration test: run with -m integration (after tests/stac/integration/setup_pgstac.sh)"
        )
    venv = Path(os.environ.get("PGSTAC_VENV", "/tmp/pgstac-venv"))
    pg_bin = _pg_bin()
    if pg_bin is None or not (venv / "bin" / "pypgstac").exists() or not (venv / "bin" / "uvicorn").exists():
        pytest.skip(
            f"pgstac services not installed (PostgreSQL: {pg_bin}, venv: {venv}); run tests/stac/integration/setup_pgstac.sh"
        )
    if not glob.glob("/usr/share/postgresql/*/extension/postgis.control"):
        pytest.skip("PostGIS is not installed; run tests/stac/integration/setup_pgstac.sh")

    # Not under pytest's tmp folder: its parents are closed to the postgres user.
    root = Path(tempfile.mkdtemp(prefix="terrapipe-pgstac-"))
    if os.geteuid() == 0:
        postgres = pwd.getpwnam("postgres")
        os.chown(root, postgres.pw_uid, postgres.pw_gid)
    data, log = root / "data", root / "setup.log"
    pg_port, api_port = free_port(), free_port()
    dsn = f"postgresql://postgres@127.0.0.1:{pg_port}/postgres"
    _run(
        _as_postgres(
            [str(pg_bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
        ),
        log,
    )
    options = f"-p {pg_port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    _run(
        _as_postgres(
            [
                str(pg_bin / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(root / "postgres.log"),
                "-w",
                "start",
            ]
        ),
        log,
    )
    api: subprocess.Popen[bytes] | None = None
    try:
        pypgstac = str(venv / "bin" / "pypgstac")
        _run([pypgstac, "migrate", "--dsn", dsn], log)
        collections = root / "collections.ndjson"
        collections.write_text(
            "\n".join(
                json.dumps(json.loads(p.read_text()))
                for p in (sample_world.s2_api_collection, sample_world.dem_api_collection)
            )
        )
        items = root / "items.ndjson"
        items.write_text(sample_world.s2_items_ndjson.read_text() + sample_world.dem_items_ndjson.read_text())
        _run(
            [pypgstac, "load", "collections", str(collections), "--dsn", dsn, "--method", "insert_ignore"],
            log,
        )
        _run([pypgstac, "load", "items", str(items), "--dsn", dsn, "--method", "insert_ignore"], log)
        env = {
            **os.environ,
            "POSTGRES_USER": "postgres",
            "POSTGRES_PASS": "",
            "POSTGRES_DBNAME": "postgres",
            "POSTGRES_HOST_READER": "127.0.0.1",
            "POSTGRES_HOST_WRITER": "127.0.0.1",
            "POSTGRES_PORT": str(pg_port),
            "PGUSER": "postgres",
            "PGPASSWORD": "",
            "PGHOST": "127.0.0.1",
            "PGPORT": str(pg_port),
            "PGDATABASE": "postgres",
        }
        command = [
            str(venv / "bin" / "uvicorn"),
            "stac_fastapi.pgstac.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(api_port),
        ]
        with (root / "api.log").open("wb") as out:
            api = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL
            )
        url = f"http://127.0.0.1:{api_port}"
        deadline = time.monotonic() + 60
        while True:
            if api.poll() is not None:
                pytest.fail(f"stac-fastapi-pgstac exited: {(root / 'api.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"stac-fastapi-pgstac did not answer within 60 s: {(root / 'api.log').read_text()[-3000:]}"
                )
            time.sleep(0.2)
        yield url
    finally:
        if api is not None:
            stop_process(api, timeout=15)
        subprocess.run(
            _as_postgres([str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)
