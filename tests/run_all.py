"""Runs the whole test suite once per backend, each in its own process.

Usage: python tests/run_all.py [--backends tensorflow,jax] [pytest args...]

Exits non-zero if any backend fails or if a backend ran no test (pytest's
exit code 5 is a failure here, never a silent pass).
"""

import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv):
    backends = ["tensorflow", "jax"]
    if argv[:1] == ["--backends"]:
        backends = argv[1].split(",")
        argv = argv[2:]
    failed = []
    for backend in backends:
        env = dict(os.environ, KERAS_BACKEND=backend)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        cmd = [sys.executable, "-m", "pytest", "-q", "tests", *argv]
        print(f"=== KERAS_BACKEND={backend}: {' '.join(cmd)}", flush=True)
        start = time.time()
        code = subprocess.call(cmd, cwd=ROOT, env=env)
        took = time.time() - start
        print(f"=== KERAS_BACKEND={backend}: exit {code} in {took:.0f} s")
        if code == 5:
            print(f"=== KERAS_BACKEND={backend}: NO TESTS RAN: failing.")
        if code != 0:
            failed.append(backend)
    if failed:
        print(f"=== FAILED on: {', '.join(failed)}")
        return 1
    print("=== all backends passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
