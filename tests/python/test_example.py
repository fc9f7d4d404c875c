"""client/examples/train_and_query (the C++ client example) against the real server: it trains,
waits, queries with theory and prints the error summary, which must equal what the Python client
gets for the same query; a second run reuses the zoo; bad usage and an unreachable server give
the documented exit codes.

Environment (set by tests/python/CMakeLists.txt): PYTHONPATH with BUILD/python and
client/python, GRADZOO_SERVER_BIN, GRADZOO_EXAMPLE_BIN.
"""

import os
import re
import subprocess
import unittest

import gradzoo
from server_process import ServerProcess


class TrainAndQueryExampleTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.binary = os.environ.get("GRADZOO_EXAMPLE_BIN")
        if not cls.binary or not os.access(cls.binary, os.X_OK):
            raise RuntimeError("set GRADZOO_EXAMPLE_BIN to the train_and_query binary")
        cls.server = ServerProcess(name="gradzoo-example")

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0

    def run_example(self, *args):
        return subprocess.run([self.binary, "--server", self.server.address, *args],
                              capture_output=True, text=True, timeout=300)

    def test_trains_queries_and_agrees_with_the_python_client(self):
        first = self.run_example("--zoo", "ex", "--steps", "1500")
        self.assertEqual(first.returncode, 0, first.stderr)
        self.assertIn("submitted trainingJobs/", first.stdout)
        self.assertIn("SUCCEEDED", first.stdout)
        m = re.search(r"mean ([0-9.]+)\s+median ([0-9.]+)\s+aggregate ([0-9.]+)", first.stdout)
        self.assertIsNotNone(m, first.stdout)
        printed = [float(v) for v in m.groups()]
        with gradzoo.Client(self.server.address) as c:
            (f,) = c.gradient_field("ex/m0000", grid=[(0, 0, 1, 11), (1, 0, 1, 11)],
                                    fixed=[0.5] * 4, theory=True)
        expected = [f.summary[k] for k in ("mean_relative_error", "median_relative_error",
                                           "aggregate_relative_error")]
        for p, e in zip(printed, expected):
            self.assertAlmostEqual(p, e, delta=6e-5)  # printed with 4 decimals
        self.assertLess(expected[2], 0.6)  # a trained model is near the exact field
        # The printed arrows are the returned arrays (first row: x1 = x2 = 0).
        row = re.search(r"^\s+0\.00\s+0\.00\s+\(\s*(\S+),\s*(\S+)\)\s+\(\s*(\S+),\s*(\S+)\)",
                        first.stdout, re.M)
        self.assertIsNotNone(row, first.stdout)
        self.assertAlmostEqual(float(row.group(1)), f.gradients[0, 0, 0], delta=6e-4)
        self.assertAlmostEqual(float(row.group(3)), f.theory[0, 0, 0], delta=6e-4)

        second = self.run_example("--zoo", "ex")
        self.assertEqual(second.returncode, 0, second.stderr)
        self.assertIn("reusing it", second.stdout)
        self.assertNotIn("submitted", second.stdout)

    def test_exit_codes(self):
        bad = subprocess.run([self.binary, "--steps", "zero"], capture_output=True, text=True,
                             timeout=60)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("usage:", bad.stderr)
        down = subprocess.run([self.binary, "--server", "127.0.0.1:1"], capture_output=True,
                              text=True, timeout=60)
        self.assertEqual(down.returncode, 1)
        self.assertIn("error: UNAVAILABLE", down.stderr)
        invalid = self.run_example("--zoo", "Not A Valid Id")
        self.assertEqual(invalid.returncode, 1)
        self.assertIn("error: INVALID_ARGUMENT", invalid.stderr)


if __name__ == "__main__":
    unittest.main()
