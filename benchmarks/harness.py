"""What every benchmark under benchmarks/ shares.

* `parser`: argparse with the common flags (`--quick`, `--output_dir`,
  `--name`, `--report`; for studies `--jobs`, `--work_dir`, `--smoke`).
* Provenance, one schema for every results JSON: `start()` when a run
  begins, `provenance(begun)` at its end gives `command`, `started_at`,
  `finished_at`, `elapsed_s`, `versions`, `machine`, `git` (at the start:
  what the workers loaded) and `git_at_end`, at the top level of the JSON.
  `load` reads older files (other shapes) into it.
* `main`: measure, save `<name>.json`, write `<name>.md` (and plots); with
  `--report` only the last step, from the saved JSON.
* Resumable multi-run studies: specs, each with a key, run in worker
  subprocesses (`python <script> --worker <job>`, `run_study`), which
  append one JSON line per run to a parts file (`work`) and skip keys
  already there, so the same command resumes an interrupted study.
* `child` / `emit`: a subprocess that returns one JSON result.
* Markdown: `table` (header and rows to lines), `provenance_lines`, and
  `write_markdown_keeping_notes` (keeps what a person wrote below the
  notes marker); `pyplot` / `save_figure` for the plots.
"""

import argparse
import collections
import datetime
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
DISTRIBUTIONS = (
    "keras",
    "tensorflow",
    "jax",
    "jaxlib",
    "torch",
    "numpy",
    "keras-dst",
    "ai-edge-litert",
)
THREAD_ENV = (
    "KERAS_BACKEND",
    "XLA_FLAGS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)
# Workers that share the cores: one thread each.
THREADS_ONE = {
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false "
    "intra_op_parallelism_threads=1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "OMP_NUM_THREADS": "1",
}
NOTES_MARKER = "<!-- hand-written notes below are kept on regeneration -->"
RESULT = "RESULT "


# -- flags ---------------------------------------------------------------


def csv(kind):
    """An argparse type: comma-separated values of `kind`."""
    return lambda text: [kind(v) for v in text.split(",") if v.strip()]


def parser(doc, name, report=True, study=False):
    """An `ArgumentParser` with the flags every benchmark has."""
    p = argparse.ArgumentParser(
        description=doc.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: small and fast, numbers not comparable",
    )
    p.add_argument("--output_dir", default=RESULTS)
    p.add_argument("--name", default=name, help="<name>.json, <name>.md")
    if report:
        p.add_argument(
            "--report",
            action="store_true",
            help="only rewrite <name>.md (and plots) from <name>.json",
        )
    if study:
        p.add_argument(
            "--jobs",
            type=int,
            default=2,
            help="worker processes at a time (one thread each if > 1)",
        )
        p.add_argument(
            "--work_dir",
            default=None,
            help="per-run JSON lines (resume); default: "
            "<output_dir>/.<name>_work",
        )
        p.add_argument(
            "--smoke",
            action="store_true",
            help="the example's --smoke: generated images, a tiny model "
            "(seconds; for tests, numbers meaningless)",
        )
        p.add_argument("--worker", help=argparse.SUPPRESS)
    return p


def finish_study_args(p, args):
    if args.jobs <= 0:
        p.error("--jobs must be > 0")
    if args.work_dir is None:
        args.work_dir = os.path.join(args.output_dir, f".{args.name}_work")
    return args


# -- provenance ----------------------------------------------------------


def versions(distributions=DISTRIBUTIONS):
    """Python's and each distribution's version (None: not installed)."""
    out = {"python": platform.python_version()}
    for dist in distributions:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def machine_info():
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
    out = {"commit": commit and commit.strip(), "keras_dst_dirty": bool(dirty)}
    if dirty:
        # Identifies the uncommitted library code the runs used.
        diff = git("diff", "HEAD", "--", "keras_dst") or ""
        out["keras_dst_diff_sha1"] = hashlib.sha1(diff.encode()).hexdigest()
    return out


def command_line():
    """The exact command: environment, CPU pinning, arguments."""
    env = [f"{k}={os.environ[k]}" for k in THREAD_ENV if os.environ.get(k)]
    argv = ["python", *sys.argv]
    cpus = sorted(getattr(os, "sched_getaffinity", lambda _: [])(0))
    if cpus and len(cpus) < (os.cpu_count() or 0):
        pin = ["taskset", "-c", ",".join(map(str, cpus))]
        return shlex.join(pin + (["env", *env] if env else []) + argv)
    return shlex.join(env + argv)


def now_iso():
    """The current UTC time to the second, ISO 8601."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"
    )


def start():
    """What `provenance` needs from the moment a run begins."""
    return {"started_at": now_iso(), "t0": time.time(), "git": git_info()}


def provenance(begun):
    """The provenance of a run that began with `begun = start()`."""
    return {
        "command": command_line(),
        "started_at": begun["started_at"],
        "finished_at": now_iso(),
        "elapsed_s": time.time() - begun["t0"],
        "versions": versions(),
        "machine": machine_info(),
        "git": begun["git"],
        "git_at_end": git_info(),
    }


def load(path):
    """A results JSON, its provenance read into today's schema (older
    files nest it, or name its fields otherwise)."""
    with open(path) as f:
        payload = json.load(f)
    payload.update(payload.pop("provenance", {}))
    for old, new, scale in (
        ("date", "started_at", 1),
        ("total_seconds", "elapsed_s", 1),
        ("minutes", "elapsed_s", 60),
    ):
        if old in payload and new not in payload:
            payload[new] = payload[old] * scale
    return payload


def _json_default(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def dump(path, payload):
    with open(path + ".tmp", "w") as f:
        json.dump(payload, f, indent=1, default=_json_default)
        f.write("\n")
    os.replace(path + ".tmp", path)


def main(args, measure, markdown, plots=None):
    """Runs a benchmark: `measure(args)` -> results, saved with their
    provenance to `<output_dir>/<name>.json`; then `plots(payload, stem)`
    (optional) and `markdown(payload, plotted)` -> lines of `<name>.md`.
    With `--report`, only the last two, from the saved JSON."""
    stem = os.path.join(args.output_dir, args.name)
    if getattr(args, "report", False):
        payload = load(stem + ".json")
    else:
        begun = start()
        payload = measure(args)
        payload = {**provenance(begun), **payload}
        os.makedirs(args.output_dir, exist_ok=True)
        dump(stem + ".json", payload)
    plotted = plots(payload, stem) if plots else None
    write_markdown_keeping_notes(stem + ".md", markdown(payload, plotted))
    print(f"wrote {stem}.json and {stem}.md", flush=True)
    return payload


# -- subprocesses --------------------------------------------------------


def child(cmd, env=None, cwd=None, echo=True):
    """Runs `cmd` and returns the JSON of its last `RESULT ` line (`emit`);
    the rest of its output is echoed, and its tail is in the error."""
    env = dict(os.environ if env is None else env)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    tail, result = collections.deque(maxlen=40), None
    for line in proc.stdout:
        if line.startswith(RESULT):
            result = json.loads(line[len(RESULT) :])
            continue
        tail.append(line)
        if echo:
            print(line, end="", flush=True)
    if proc.wait() or result is None:
        raise RuntimeError(
            f"{shlex.join(cmd)[:300]} failed ({proc.returncode}):\n"
            + "".join(tail)
        )
    return result


def emit(result):
    """The result of a `child` process, on its own line of stdout."""
    print(RESULT + json.dumps(result, default=_json_default), flush=True)


# -- resumable studies ---------------------------------------------------


def read_parts(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def done_keys(work_dir, key_of):
    """The keys of the runs already in any parts file of `work_dir`."""
    if not os.path.isdir(work_dir):
        return set()
    return {
        key_of(r)
        for name in sorted(os.listdir(work_dir))
        if name.endswith(".jsonl")
        for r in read_parts(os.path.join(work_dir, name))
    }


def run_study(args, groups, key_of, script, wanted=None):
    """Runs every spec of `groups` not yet done; returns (runs, failed).

    Args:
        groups: [(worker id, environment, specs)]: one worker process per
            group, `args.jobs` at a time, with `environment` added to
            this process's; each appends its runs to
            `<work_dir>/<worker id>.jsonl`.
        key_of: spec or run -> its key (unique over the study).
        script: the benchmark's path; a worker runs `python script
            --worker <job file>` and calls `work`.
        wanted: every spec of the study (default: those of `groups`).

    Returns:
        The runs of every wanted spec, in key order, read back from the parts
        files, and the ids of the workers that failed.
    """
    os.makedirs(args.work_dir, exist_ok=True)
    done = done_keys(args.work_dir, key_of)
    pending = []
    for wid, environment, specs in groups:
        todo = [s for s in specs if key_of(s) not in done]
        print(f"{wid}: {len(todo)} of {len(specs)} runs to do", flush=True)
        if not todo:
            continue
        job = os.path.join(args.work_dir, f"{wid}.todo.json")
        parts = os.path.join(args.work_dir, f"{wid}.jsonl")
        with open(job, "w") as f:
            json.dump({"specs": todo, "parts": parts}, f)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **environment)
        if args.jobs > 1:
            env.update(THREADS_ONE)
        cmd = [sys.executable, os.path.abspath(script), "--worker", job]
        pending.append((wid, cmd, env))
    running, failed = [], []
    while pending or running:
        while pending and len(running) < args.jobs:
            wid, cmd, env = pending.pop(0)
            log = os.path.join(args.work_dir, f"{wid}.log")
            print(f"start {wid} (log {log})", flush=True)
            with open(log, "a") as out:
                proc = subprocess.Popen(
                    cmd, env=env, stdout=out, stderr=subprocess.STDOUT
                )
            running.append((wid, proc))
        time.sleep(0.5)
        for wid, proc in list(running):
            if proc.poll() is not None:
                running.remove((wid, proc))
                print(f"{wid} exited with {proc.returncode}", flush=True)
                if proc.returncode:
                    failed.append(wid)
    if wanted is None:
        wanted = [s for _, _, specs in groups for s in specs]
    wanted = {key_of(s) for s in wanted}
    runs = {}
    for name in sorted(os.listdir(args.work_dir)):
        if name.endswith(".jsonl"):
            for r in read_parts(os.path.join(args.work_dir, name)):
                if key_of(r) in wanted:
                    runs[key_of(r)] = r
    return [runs[k] for k in sorted(runs)], failed


def work(job_file, key_of, runner, line=None):
    """A study's worker: runs each spec of the job not yet in its parts
    file and appends `{**spec, **runner(spec), "wall_s": ...}` there.

    Args:
        runner: called once with the specs to run -> a function spec ->
            dict (the run's measurements).
        line: run -> its progress line (default: its key).
    """
    with open(job_file) as f:
        job = json.load(f)
    done = {key_of(r) for r in read_parts(job["parts"])}
    todo = [s for s in job["specs"] if key_of(s) not in done]
    run_one = runner(todo) if todo else None
    for spec in todo:
        began = time.time()
        record = {**spec, **run_one(spec)}
        record["wall_s"] = time.time() - began
        with open(job["parts"], "a") as f:
            f.write(json.dumps(record, default=_json_default) + "\n")
        print((line or key_of)(record), flush=True)
    return 0


def fashion_mnist_runner(name, smoke=False):
    """A function (flag values, recalibrate) -> (summary, record) that runs
    `examples/fashion_mnist.py`'s `run()` with those flags (the rest at
    their defaults) in this process: the record has what the studies keep
    of its summary, and with `recalibrate` the test accuracy after the
    BatchNorm recalibration that Sup-tickets applies (`bn_control`)."""
    import keras
    from absl import flags
    from absl.testing import flagsaver

    from examples import fashion_mnist

    flags.FLAGS([name])
    out_dir = tempfile.mkdtemp(prefix=f"keras_dst_{name}_")

    def run(values, recalibrate):
        keras.backend.clear_session()
        with flagsaver.flagsaver(
            output_dir=out_dir, verbose=0, smoke=smoke, **values
        ):
            model, summary = fashion_mnist.run()
        os.remove(summary["files"]["model"])
        config = summary["config"]
        record = {k: summary.get(k) for k in SUMMARY_FIELDS}
        record.update(
            final_sparsity=summary["sparsity"],
            distribution=config["distribution"],
            learning_rate=config["learning_rate"],
            test_accuracy_bn_recalibrated=(
                bn_control(fashion_mnist, model, config)
                if recalibrate
                else None
            ),
        )
        return summary, record

    return run


SUMMARY_FIELDS = (
    "test_accuracy",
    "test_loss",
    "kernel_zero_fraction",
    "itop_rate",
    "active_weights",
    "sparse_weights",
    "parameters",
    "updates",
    "history",
    "train_time_s",
    "backend",
    "versions",
)


def bn_control(fashion_mnist, model, config):
    """Test accuracy after Sup-tickets' BatchNorm recalibration.

    A control for the Sup-tickets comparison: SupTickets recalibrates the
    BatchNorm statistics of its superposed network on the training images;
    the same recalibration (`keras_dst.superposition.recalibrate_batchnorm`,
    batch 128 as in the example) applied to another method's final model
    separates the two effects. None for models without BatchNorm.
    """
    from keras_dst.superposition import recalibrate_batchnorm

    (x_train, _), (x_test, y_test) = fashion_mnist.load_data(config)
    if not recalibrate_batchnorm(
        model, x_train.astype("float32"), batch_size=128
    ):
        return None
    _, accuracy = model.evaluate(
        x_test.astype("float32"), y_test, batch_size=256, verbose=0
    )
    return float(accuracy)


# -- statistics ----------------------------------------------------------


def mean_std(values):
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def mean_se(values):
    mean, std = mean_std(values)
    return mean, std / math.sqrt(len(values)) if len(values) > 1 else 0.0


# -- reports -------------------------------------------------------------


def table(header, rows, align=None):
    """A Markdown table: `header` and `rows` (lists of cells) to lines;
    `align`: a string of 'l' / 'r' per column (default: all 'l')."""
    align = align or "l" * len(header)
    rule = "|" + "".join("---:|" if a == "r" else "---|" for a in align)
    lines = ["| " + " | ".join(header) + " |", rule]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def provenance_lines(payload, script):
    """The Markdown lines that say how `payload` was made."""
    machine = payload.get("machine", {})
    cpus = machine.get("cpus_available", machine.get("cpu_count", "?"))
    when = [
        f"{word} {payload[key]}"
        for word, key in (
            ("started", "started_at"),
            ("finished", "finished_at"),
        )
        if payload.get(key)
    ]
    if payload.get("elapsed_s") is not None:
        when.append(f"{payload['elapsed_s'] / 60:.1f} min")
    found = {k: v for k, v in payload.get("versions", {}).items() if v}
    lines = [
        f"Generated by `benchmarks/{script}`. Command:",
        "",
        f"    {payload.get('command', '?')}",
        "",
        "- "
        + ", ".join([*when, f"on {machine.get('cpu_model', '?')}"])
        + f" ({cpus} CPUs).",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in found.items()) + ".",
    ]
    git, end = payload.get("git"), payload.get("git_at_end")
    if git is not None:
        line = f"- Git at the start: {json.dumps(git)}"
        if end is None:  # files written before the start was recorded
            line = f"- Git at the end of the run: {json.dumps(git)}"
        elif end != git:
            line += f"; at the end: {json.dumps(end)}"
        lines.append(line + ".")
    return lines


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


def pyplot():
    """matplotlib.pyplot drawing to files, or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save_figure(fig, path, dpi=110):
    """Saves and closes `fig`; returns the file's name (for links)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return os.path.basename(path)


def run_quick(script, *flags, env=None):
    """For tests: `python benchmarks/<script>.py --quick <flags>` into a
    temporary folder; returns (its exit status and output, the JSON, the
    Markdown) of <name> `quick`."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, os.path.join(ROOT, "benchmarks", script)]
        cmd += ["--quick", f"--output_dir={out}", "--name=quick", *flags]
        env = dict(os.environ if env is None else env)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        done = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True
        )
        log = done.stdout[-3000:] + done.stderr[-3000:]
        if done.returncode:
            return done.returncode, log, None, None
        with open(os.path.join(out, "quick.md")) as f:
            return 0, log, load(os.path.join(out, "quick.json")), f.read()
