"""Test helper: the real gradzoo-server binary on a free port in a temporary data dir.

Deliberately independent of the gradzoo package (test_interop.py must not use gradzoo code).
The binary comes from $GRADZOO_SERVER_BIN (set by tests/python/CMakeLists.txt).
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time

import grpc


class ServerProcess:
    """Starts gradzoo-server with --listen 127.0.0.1:0 --port-file and waits until the port is
    written and a channel to it is ready. ``stop()`` sends SIGTERM and returns the exit code."""

    def __init__(self, extra_args=(), name="gradzoo-test"):
        binary = os.environ.get("GRADZOO_SERVER_BIN")
        if not binary or not os.access(binary, os.X_OK):
            raise RuntimeError("set GRADZOO_SERVER_BIN to the gradzoo-server binary "
                               "(ctest does this)")
        self.dir = tempfile.mkdtemp(prefix=name + "-")
        self.data_dir = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "server.log")
        port_file = os.path.join(self.dir, "port")
        env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [binary, "--listen", "127.0.0.1:0", "--port-file", port_file, "--data-dir",
                 self.data_dir, "--device", "cpu", *extra_args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 120
        self.port = None
        while self.port is None:
            if self.process.poll() is not None:
                raise RuntimeError(f"gradzoo-server exited {self.process.returncode}:\n"
                                   + self.log())
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("gradzoo-server did not start:\n" + self.log())
            try:
                with open(port_file) as f:
                    text = f.read()
                if text.endswith("\n"):
                    self.port = int(text)
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        self.address = f"127.0.0.1:{self.port}"
        with grpc.insecure_channel(self.address) as ch:
            grpc.channel_ready_future(ch).result(timeout=60)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        code = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(60)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            code = self.process.returncode
            self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)
        return code
