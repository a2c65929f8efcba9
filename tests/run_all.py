"""Runs the whole test suite once per backend, each in its own process.

Usage: python tests/run_all.py [--backends tensorflow,jax,torch]
                               [--sequential] [pytest args...]

The backends run side by side, one thread each (most tests are
single-threaded Python and tracing, so the processes share the cores
well); each one's output is printed whole when it finishes.
`--sequential` runs them one after the other, streaming the output.

Exits non-zero if any backend fails or if a backend ran no test (pytest's
exit code 5 is a failure here, never a silent pass).
"""

import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def command(backend, argv, scratch, single_threaded=False):
    env = dict(os.environ, KERAS_BACKEND=backend)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if single_threaded:
        # Side by side, three processes share the cores: one thread each
        # spares the switching between their op thread pools (measured:
        # examples + sparsify tests 155 s wall instead of 182 s).
        env.setdefault("OMP_NUM_THREADS", "1")
        env.setdefault("TF_NUM_INTRAOP_THREADS", "1")
        env.setdefault("TF_NUM_INTEROP_THREADS", "1")
        flags = env.get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            env["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false"
    if backend == "jax":
        # XLA compiles the same small graphs for many tests (the same
        # model shapes, train steps and updates): a compilation cache
        # for this run (empty at the start, deleted at the end) turns the
        # repeats into disk reads. Measured on tests/hub_test.py: 92 s
        # instead of 113 s.
        env.setdefault(
            "JAX_COMPILATION_CACHE_DIR", os.path.join(scratch, "jax_cache")
        )
        env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
        env.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    # The ten slowest tests close each backend's output: suite time is a
    # budget (well under 20 minutes on 2 cores), so CI shows where it goes.
    cmd = [sys.executable, "-m", "pytest", "-q", "--durations=10", "tests"]
    return [*cmd, *argv], env


def report(backend, code, took):
    print(f"=== KERAS_BACKEND={backend}: exit {code} in {took:.0f} s")
    if code == 5:
        print(f"=== KERAS_BACKEND={backend}: NO TESTS RAN: failing.")


def main(argv):
    backends = ["tensorflow", "jax", "torch"]
    sequential = False
    while argv[:1] in (["--backends"], ["--sequential"]):
        if argv[0] == "--sequential":
            sequential, argv = True, argv[1:]
        else:
            backends, argv = argv[1].split(","), argv[2:]
    start = time.time()
    codes = {}
    scratch = tempfile.TemporaryDirectory(prefix="keras_dst_tests_")
    with scratch:
        run(backends, argv, sequential, scratch.name, codes)
    print(f"=== wall time {time.time() - start:.0f} s")
    failed = [b for b in backends if codes[b] != 0]
    if failed:
        print(f"=== FAILED on: {', '.join(failed)}")
        return 1
    print("=== all backends passed")
    return 0


def run(backends, argv, sequential, scratch, codes):
    """Runs the backends' suites; fills `codes` with their exit codes."""
    if sequential:
        for backend in backends:
            cmd, env = command(backend, argv, scratch)
            print(f"=== KERAS_BACKEND={backend}: {' '.join(cmd)}", flush=True)
            began = time.time()
            codes[backend] = subprocess.call(cmd, cwd=ROOT, env=env)
            report(backend, codes[backend], time.time() - began)
    else:
        running = {}
        for backend in backends:
            cmd, env = command(backend, argv, scratch, single_threaded=True)
            print(f"=== KERAS_BACKEND={backend}: {' '.join(cmd)}", flush=True)
            log = tempfile.TemporaryFile(mode="w+")
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
            running[backend] = (proc, log, time.time())
        while running:
            time.sleep(1)
            for backend, (proc, log, began) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[backend]
                log.seek(0)
                print(f"=== KERAS_BACKEND={backend}: output", flush=True)
                sys.stdout.write(log.read())
                log.close()
                codes[backend] = proc.returncode
                report(backend, proc.returncode, time.time() - began)
                sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
