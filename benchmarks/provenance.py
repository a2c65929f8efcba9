"""Provenance of a benchmark run (versions, machine, git state, command)
and the markdown writer that keeps hand-written notes.

Shared by the benchmark scripts so that every results file records the
same facts the same way.
"""

import datetime
import hashlib
import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DISTRIBUTIONS = (
    "keras",
    "tensorflow",
    "jax",
    "jaxlib",
    "numpy",
    "keras-dst",
)


def versions(distributions=DISTRIBUTIONS):
    """Python's and each distribution's version (None: not installed)."""
    out = {"python": platform.python_version()}
    for dist in distributions:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def machine_info(devices=False):
    info = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    if hasattr(os, "sched_getaffinity"):
        info["cpus_available"] = len(os.sched_getaffinity(0))
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["mem_total"] = f.readline().split(":", 1)[1].strip()
    except OSError:
        pass
    if not devices:
        return info
    try:
        import jax

        info["jax_devices"] = [str(d) for d in jax.devices()]
    except Exception:  # noqa: BLE001 - informative only
        pass
    return info


def git_info():
    def git(*cmd):
        try:
            return subprocess.run(
                ["git", *cmd],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        except (OSError, subprocess.CalledProcessError):
            return None

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--", "keras_dst")
    out = {
        "commit": commit and commit.strip(),
        "keras_dst_dirty": bool(dirty),
    }
    if dirty:
        # Identifies the uncommitted library code the runs used.
        diff = git("diff", "HEAD", "--", "keras_dst") or ""
        out["keras_dst_diff_sha1"] = hashlib.sha1(diff.encode()).hexdigest()
    return out


THREAD_ENV = (
    "KERAS_BACKEND",
    "XLA_FLAGS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)


def command_line():
    """The exact command: environment, CPU pinning, arguments."""
    env = [f"{k}={os.environ[k]}" for k in THREAD_ENV if os.environ.get(k)]
    argv = ["python", *sys.argv]
    cpus = sorted(getattr(os, "sched_getaffinity", lambda _: [])(0))
    if cpus and len(cpus) < (os.cpu_count() or 0):
        pin = ["taskset", "-c", ",".join(map(str, cpus))]
        return shlex.join(pin + (["env", *env] if env else []) + argv)
    return shlex.join(env + argv)


NOTES_MARKER = "<!-- hand-written notes below are kept on regeneration -->"


def write_markdown_keeping_notes(path, lines):
    """Writes `lines` to `path`, then the notes marker and whatever a
    person wrote below that marker in the file already there."""
    notes = ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        if NOTES_MARKER in old:
            notes = old.split(NOTES_MARKER, 1)[1]
    text = "\n".join([*lines, NOTES_MARKER]) + (notes or "\n")
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def now_iso():
    """The current UTC time to the second, ISO 8601."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"
    )


def run_start():
    """What `run_provenance` needs from the moment a run begins: the time
    (ISO and `time.time()`) and `git_info()` (what the workers load)."""
    return {"started_at": now_iso(), "t0": time.time(), "git": git_info()}


def run_provenance(start):
    """What a results file records about the run that wrote it.

    Args:
        start: `run_start()` when the run began; the git state at the end
            is recorded beside the one at the start.
    """
    return {
        "command": command_line(),
        "started_at": start["started_at"],
        "finished_at": now_iso(),
        "elapsed_s": time.time() - start["t0"],
        "versions": versions(),
        "machine": machine_info(),
        "git": start["git"],
        "git_at_end": git_info(),
    }
