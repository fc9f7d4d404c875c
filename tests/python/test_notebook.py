"""Executes client/python/examples/tour.ipynb headless against a live gradzoo-server and fails
on any cell error.

nbconvert runs as ``python3 -m nbconvert`` (the program behind ``jupyter nbconvert``; Debian's
python3-nbconvert installs the module without the ``jupyter`` launcher unless
jupyter-nbconvert/jupyter-core are also installed). Needs python3-nbconvert, python3-ipykernel
and python3-matplotlib.

Environment (set by tests/python/CMakeLists.txt): PYTHONPATH with BUILD/python and
client/python, GRADZOO_SERVER_BIN, GRADZOO_TOUR (the notebook).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from server_process import ServerProcess

NOTEBOOK = os.environ.get("GRADZOO_TOUR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "client", "python", "examples",
    "tour.ipynb")


class TourNotebookTest(unittest.TestCase):

    def test_committed_notebook_is_clean(self):
        """Stored without outputs, so diffs stay readable and nothing stale is shown."""
        with open(NOTEBOOK) as f:
            nb = json.load(f)
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                self.assertEqual(cell.get("outputs"), [], cell["source"][:2])
                self.assertIsNone(cell.get("execution_count"))

    def test_executes_without_errors(self):
        for module in ("nbconvert", "ipykernel", "matplotlib"):
            probe = subprocess.run([sys.executable, "-c", f"import {module}"],
                                   capture_output=True)
            self.assertEqual(probe.returncode, 0,
                             f"{module} missing: apt-get install python3-nbconvert "
                             "python3-ipykernel python3-matplotlib (scripts/setup.sh)")
        server = ServerProcess(name="gradzoo-tour")
        work = tempfile.mkdtemp(prefix="gradzoo-tour-")
        try:
            src = os.path.join(work, "tour.ipynb")
            shutil.copy(NOTEBOOK, src)
            # No MPLBACKEND: the kernel's inline backend must turn figures into PNG outputs.
            env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
            env.update(GRADZOO_SERVER=server.address, OMP_WAIT_POLICY="PASSIVE")
            start = time.monotonic()
            run = subprocess.run(
                [sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute",
                 "--ExecutePreprocessor.timeout=300", "--ExecutePreprocessor.kernel_name=python3",
                 "--output", "executed.ipynb", src],
                capture_output=True, text=True, env=env, timeout=600, cwd=work)
            elapsed = time.monotonic() - start
            self.assertEqual(run.returncode, 0, f"nbconvert failed:\n{run.stderr[-6000:]}")
            print(f"\ntour.ipynb executed in {elapsed:.1f}s", file=sys.stderr)
            with open(os.path.join(work, "executed.ipynb")) as f:
                nb = json.load(f)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            self.assertEqual(server.stop(), 0)

        outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
        errors = [o for o in outputs if o["output_type"] == "error"]
        self.assertEqual(errors, [])
        self.assertTrue(all(c.get("execution_count") for c in nb["cells"]
                            if c["cell_type"] == "code"), "a code cell did not run")
        rich = [o.get("data", {}) for o in outputs
                if o["output_type"] in ("display_data", "execute_result")]
        html = "".join("".join(d.get("text/html", "")) for d in rich)
        # The job's progress bar updated in place and ended SUCCEEDED.
        self.assertIn("<progress", html)
        self.assertIn("SUCCEEDED", html)
        # The error table and the figures (2x2 quiver grid, error vs lambda).
        self.assertIn("aggregate rel err", html)
        self.assertGreaterEqual(sum("image/png" in d for d in rich), 2)
        text = "".join("".join(o.get("text", "")) for o in outputs if o["output_type"] == "stream")
        self.assertIn("lambda=0.0: mean relative error", text)


if __name__ == "__main__":
    unittest.main()
