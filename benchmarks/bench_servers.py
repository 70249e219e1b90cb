"""Git servers for bench_transfer.py, each in a process of its own so that its CPU and memory
can be measured (bench_transfer.py runs this under GNU ``time``).  Stops at EOF on stdin,
after the requests in flight.

    python benchmarks/bench_servers.py git-inetd ROOT PORT   # git://, one `git daemon --inetd` per connection
    python benchmarks/bench_servers.py http ROOT PORT        # smart HTTP, `git http-backend`, streamed

The HTTP server streams the request body into ``git http-backend`` and its output back
to the client as both flow (as Apache or nginx + fcgiwrap do); tests/servers.py's test
server reads each whole body and each whole response into memory first, which both
serialises the transfer (the server's index-pack cannot start before the upload ended)
and puts the pack in the server's RSS.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BLOCK = 1 << 16


def serve_git(root: str, port: int) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(16)
    threads: list[threading.Thread] = []

    def handle(conn: socket.socket) -> None:
        with conn:
            subprocess.run(["git", "daemon", "--inetd", "--export-all", "--enable=receive-pack",
                            "--informative-errors", f"--base-path={root}", root],
                           stdin=conn.fileno(), stdout=conn.fileno(), stderr=subprocess.DEVNULL)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            t = threading.Thread(target=handle, args=(conn,))
            t.start()
            threads.append(t)

    threading.Thread(target=accept, daemon=True).start()
    sys.stdin.read()
    listener.close()
    for t in threads:
        t.join()


class StreamingCGI(BaseHTTPRequestHandler):
    root = ""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _feed(self, stdin: object) -> None:
        """Copy the request body into http-backend's stdin as it arrives (chunked or not)."""
        assert hasattr(stdin, "write")
        try:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    while size:
                        block = self.rfile.read(min(size, BLOCK))
                        if not block:
                            return
                        stdin.write(block)
                        size -= len(block)
                    self.rfile.readline()
            else:
                left = int(self.headers.get("Content-Length") or 0)
                while left:
                    block = self.rfile.read(min(left, BLOCK))
                    if not block:
                        return
                    stdin.write(block)
                    left -= len(block)
        except BrokenPipeError:
            pass
        finally:
            try:
                stdin.close()  # type: ignore[attr-defined]
            except BrokenPipeError:
                pass

    def _run(self) -> None:
        path, _, query = self.path.partition("?")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": self.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "REMOTE_USER": "cas-bench",
            "REMOTE_ADDR": "127.0.0.1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
        }
        if "GIT_EXEC_PATH" in os.environ:
            env["GIT_EXEC_PATH"] = os.environ["GIT_EXEC_PATH"]
        if self.headers.get("Content-Length"):
            env["CONTENT_LENGTH"] = self.headers["Content-Length"]
        proc = subprocess.Popen(["git", "http-backend"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert proc.stdin is not None and proc.stdout is not None
        feeder = threading.Thread(target=self._feed, args=(proc.stdin,))
        feeder.start()
        status, headers = 200, []
        while True:
            line = proc.stdout.readline().decode("latin-1").rstrip("\r\n")
            if not line:
                break
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            else:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Connection", "close")  # no length: the body ends when the connection does
        self.end_headers()
        shutil.copyfileobj(proc.stdout, self.wfile, BLOCK)
        feeder.join()
        proc.wait()
        self.close_connection = True

    do_GET = _run
    do_POST = _run


def serve_http(root: str, port: int) -> None:
    handler = type("Handler", (StreamingCGI,), {"root": root})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = False
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()
    server.shutdown()
    server.server_close()  # joins the request threads


if __name__ == "__main__":
    kind, root, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    {"git-inetd": serve_git, "http": serve_http}[kind](root, port)
