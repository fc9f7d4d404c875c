"""Soak: 16 concurrent clients over loopback with a mixed workload against one real
gradzoo-server with authentication on, for a bounded time (GRADZOO_SOAK_SECONDS, default 40).

Two users (8 clients each) read their own zoo's models, compute small gradient fields with the
exact-gradient comparison, count regions, compute exact partitions and orthogonality scores, and
make calls that must fail in a known way (another user's zoo -> NOT_FOUND, a bad grid ->
INVALID_ARGUMENT, no token -> UNAUTHENTICATED). Passes when:
  * no call fails with anything but its expected code, and every answer is right (the field of a
    fixed model on a fixed grid is the same bytes every time, partitions sum to the slice area);
  * the server's resident memory is flat: the median RSS of the last quarter of the run is at
    most 15% + 24 MiB above the median of the second quarter (the first is warm-up);
  * health answers throughout, and the server exits 0 on SIGTERM afterwards.
"""

import os
import random
import statistics
import threading
import time
import unittest

import numpy as np

import gradzoo
from server_process import ServerProcess

SECONDS = float(os.environ.get("GRADZOO_SOAK_SECONDS", "40"))
CLIENTS = 16
TOKENS = {"alice": "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0", "bob": "0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e"}


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class SoakTest(unittest.TestCase):

    def test_mixed_workload_from_16_clients(self):
        tokens_file = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"soak-tokens-{os.getpid()}")
        with open(tokens_file, "w") as f:
            for user, token in TOKENS.items():
                f.write(f"{user} {token} user\n")
        os.chmod(tokens_file, 0o600)
        server = ServerProcess(["--tokens-file", tokens_file, "--query_threads", "2"],
                               name="gradzoo-soak")
        try:
            self._run(server)
        finally:
            code = server.stop()
            os.unlink(tokens_file)
        self.assertEqual(code, 0, "server did not exit 0 on SIGTERM")

    def _run(self, server):
        admin = {u: gradzoo.Client(server.address, token=t, timeout=60) for u, t in TOKENS.items()}
        for user, c in admin.items():
            c.train(f"{user}-zoo", lambdas=[0.0, 0.5], seeds=[0, 1], validation_seeds=[1],
                    hidden=[16, 16], steps=300, batch_size=128,
                    train_examples=512).wait(progress=False, timeout=600)
        grid = [(0, 0, 1, 12), (1, 0, 1, 12)]
        reference = {u: c.gradient_field(f"{u}-zoo/m0000", grid=grid, theory=True)[0].gradients
                     .tobytes() for u, c in admin.items()}

        errors, counts, lock = [], {}, threading.Lock()
        stop_at = time.monotonic() + SECONDS

        def note(kind):
            with lock:
                counts[kind] = counts.get(kind, 0) + 1

        def expect_error(cls, fn):
            try:
                fn()
            except cls:
                return
            raise AssertionError(f"expected {cls.__name__}")

        def worker(index):
            user = "alice" if index % 2 == 0 else "bob"
            other = "bob" if user == "alice" else "alice"
            rng = random.Random(index)
            client = gradzoo.Client(server.address, token=TOKENS[user], timeout=60)
            anonymous = gradzoo.Client(server.address, timeout=30)
            zoo = f"{user}-zoo"
            ops = [
                ("info", lambda: client.server_info()),
                ("zoos", lambda: self.assertEqual([z.id for z in client.zoos()], [zoo])),
                ("models", lambda: self.assertEqual(len(client.models(zoo, weights=True)), 4)),
                ("field", lambda: self.assertEqual(
                    client.gradient_field(f"{zoo}/m0000", grid=grid, theory=True)[0]
                    .gradients.tobytes(), reference[user])),
                ("zoo-field", lambda: self.assertEqual(
                    len(client.gradient_field(zoo=zoo, points=np.random.default_rng(
                        rng.randrange(1 << 30)).uniform(0, 1, (500, 4)))), 4)),
                ("regions", lambda: self.assertGreater(
                    client.count_regions(f"{zoo}/m0001", grid=[(0, 0, 1, 40), (1, 0, 1, 40)])
                    .regions, 0)),
                ("partition", lambda: self.assertAlmostEqual(
                    sum(r.area for r in client.region_partition(
                        f"{zoo}/m0002", [(0, 0, 1), (1, 0, 1)]).regions), 1.0, places=9)),
                ("orthogonality", lambda: self.assertEqual(
                    client.orthogonality(zoo, method="cos").models_scored, 4)),
                ("other-user", lambda: expect_error(
                    gradzoo.NotFoundError, lambda: client.models(f"{other}-zoo"))),
                ("bad-grid", lambda: expect_error(
                    gradzoo.InvalidArgumentError,
                    lambda: client.gradient_field(f"{zoo}/m0000", grid=[(9, 0, 1, 3)]))),
                ("no-token", lambda: expect_error(
                    gradzoo.UnauthenticatedError, lambda: anonymous.zoos())),
                ("health", lambda: self.assertTrue(anonymous.health())),
            ]
            try:
                while time.monotonic() < stop_at:
                    name, op = rng.choice(ops)
                    try:
                        op()
                        note(name)
                    except Exception as e:  # noqa: BLE001 - every failure is reported
                        with lock:
                            errors.append(f"client {index} {name}: {type(e).__name__}: {e}")
            finally:
                client.close()
                anonymous.close()

        samples = []
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(CLIENTS)]
        start = time.monotonic()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            samples.append((time.monotonic() - start, rss_bytes(server.process.pid)))
            time.sleep(0.5)
        for t in threads:
            t.join()
        for c in admin.values():
            c.close()

        total = sum(counts.values())
        print(f"\nsoak: {total} calls in {SECONDS:.0f}s from {CLIENTS} clients: "
              + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        self.assertEqual(errors[:10], [], f"{len(errors)} unexpected errors")
        self.assertGreater(total, CLIENTS * 5, "the workload barely ran")
        self.assertTrue(all(counts.get(k, 0) > 0 for k in ("field", "partition", "no-token")))
        quarter = SECONDS / 4
        second = [r for t, r in samples if quarter <= t < 2 * quarter]
        last = [r for t, r in samples if t >= 3 * quarter]
        self.assertTrue(second and last, "too few memory samples")
        a, b = statistics.median(second), statistics.median(last)
        print(f"soak: server RSS median {a / 2**20:.1f} MiB (2nd quarter) -> "
              f"{b / 2**20:.1f} MiB (last quarter), peak {max(r for _, r in samples) / 2**20:.1f} MiB")
        self.assertLessEqual(b, 1.15 * a + 24 * 2**20, "server memory grows under a steady load")


if __name__ == "__main__":
    unittest.main()
