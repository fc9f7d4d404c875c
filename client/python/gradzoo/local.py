"""Start a private gradzoo-server for a notebook or script.

    with gradzoo.LocalServer() as server:          # any free port, a temporary data dir
        client = gradzoo.Client(server.address)

The binary is ``binary=``, else $GRADZOO_SERVER_BIN, else ``gradzoo-server`` on PATH. The server
listens on 127.0.0.1 on a free port (``--listen 127.0.0.1:0 --port-file``); ``start()`` returns
once it answers the health check SERVING. ``stop()`` sends SIGTERM (graceful: jobs cancelled,
calls drained) and waits; a temporary data dir is then removed.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time

from .client import Client
from .errors import GradzooError

__all__ = ["LocalServer", "find_server_binary"]


def find_server_binary(binary=None):
    """The gradzoo-server executable to run (see the module doc); FileNotFoundError if none,
    or if ``binary`` is given but is not an executable file."""
    if binary is not None:
        if os.path.isfile(binary) and os.access(binary, os.X_OK):
            return binary
        raise FileNotFoundError(f"{binary} is not an executable file")
    for candidate in (os.environ.get("GRADZOO_SERVER_BIN"), shutil.which("gradzoo-server")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError("gradzoo-server not found: pass binary=, set GRADZOO_SERVER_BIN or "
                            "put the build directory on PATH")


class LocalServer:
    """A gradzoo-server child process on a free local port.

    ``data_dir``: keep zoos there (default: a temporary directory, deleted on stop).
    ``device``: "cpu", "auto" or "cuda:N". ``args``: extra flags, e.g. ["--job_workers", "2"].
    The server's log goes to ``log_path`` (default: server.log next to the data).
    """

    def __init__(self, binary=None, data_dir=None, device="cpu", args=(), startup_timeout=60.0,
                 log_path=None):
        self.binary = find_server_binary(binary)
        self._tmp = None
        self._root = None
        if data_dir is None:
            self._tmp = tempfile.mkdtemp(prefix="gradzoo-")
            self._root = self._tmp
            data_dir = os.path.join(self._tmp, "data")
        else:
            self._root = os.path.dirname(os.path.abspath(data_dir))
        self.data_dir = data_dir
        self.device = device
        self.args = list(args)
        self.startup_timeout = startup_timeout
        self.log_path = log_path or os.path.join(self._tmp or self._root, "server.log")
        self.port = None
        self.process = None

    @property
    def address(self):
        """"127.0.0.1:PORT" once started."""
        return None if self.port is None else f"127.0.0.1:{self.port}"

    def log_tail(self, n=20):
        """The last ``n`` lines of the server's log."""
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def start(self):
        """Starts the server and waits until it is SERVING; returns self. RuntimeError with the
        log's tail if it exits or does not serve within ``startup_timeout`` seconds."""
        if self.process is not None:
            return self
        port_dir = tempfile.mkdtemp(prefix="gradzoo-port-")
        port_file = os.path.join(port_dir, "port")
        env = dict(os.environ)
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        cmd = [self.binary, "--listen", "127.0.0.1:0", "--port-file", port_file, "--data-dir",
               self.data_dir, "--device", self.device] + self.args
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            stdin=subprocess.DEVNULL)
        finally:
            log.close()
        deadline = time.monotonic() + self.startup_timeout
        try:
            while self.port is None:
                if self.process.poll() is not None:
                    raise RuntimeError(f"gradzoo-server exited with {self.process.returncode}:\n"
                                       + self.log_tail())
                if time.monotonic() > deadline:
                    raise RuntimeError("gradzoo-server did not report its port in "
                                       f"{self.startup_timeout}s:\n" + self.log_tail())
                try:
                    with open(port_file) as f:
                        text = f.read()
                    if text.endswith("\n"):  # written completely
                        self.port = int(text)
                except (OSError, ValueError):
                    pass
                if self.port is None:
                    time.sleep(0.05)
            with Client(self.address) as c:
                c.wait_for_server(max(1.0, deadline - time.monotonic()))
        except (RuntimeError, GradzooError):
            self.stop()
            raise
        finally:
            shutil.rmtree(port_dir, ignore_errors=True)
        return self

    def stop(self, timeout=30.0):
        """SIGTERM, wait up to ``timeout`` s (then SIGKILL); returns the exit code."""
        code = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            code = self.process.returncode
            self.process = None
        self.port = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        return code

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def __del__(self):
        if getattr(self, "process", None) is not None:
            self.stop()
