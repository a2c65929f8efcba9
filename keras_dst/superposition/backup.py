"""Backups of Sup-tickets' running average, for exact resumes.

One `.npz` per snapshot (`sup_tickets_<k>.npz`: the average after k
tickets, the tickets' records and the optimizer step it was taken at),
written atomically. Everything else of a run (step, masks, R_s, the cyclic
rate) is in the model's and optimizer's variables.
"""

import json
import os

import numpy as np


def _path(directory, count):
    return os.path.join(directory, f"sup_tickets_{count:03d}.npz")


def save_average(directory, count, average, tickets, step):
    """Writes the average after `count` tickets, taken at `step`.

    `average` has one array per model weight, or None for weights that
    are not averaged (the sparse layers' masks and probes): not written.
    """
    os.makedirs(directory, exist_ok=True)
    path = _path(directory, count)
    arrays = {f"w{i}": a for i, a in enumerate(average) if a is not None}
    arrays["tickets"] = np.array(json.dumps(tickets))
    arrays["step"] = np.array(int(step))
    with open(path + ".tmp", "wb") as f:
        np.savez(f, **arrays)
    os.replace(path + ".tmp", path)  # never a half-written state


def load_average(directory, max_count, before_step, num_weights):
    """The latest snapshot taken before optimizer `before_step`.

    Returns:
        `(average, count, tickets)`, or None when there is none; the
        average has None for the weights that were not written.
    """
    if directory is None or not os.path.isdir(directory):
        return None
    for count in range(max_count, -1, -1):
        path = _path(directory, count)
        if not os.path.exists(path):
            continue
        with np.load(path) as state:
            if int(state["step"]) >= before_step:
                continue  # taken after the checkpoint: redone
            average = [
                state[f"w{i}"] if f"w{i}" in state.files else None
                for i in range(num_weights)
            ]
            return average, count, json.loads(str(state["tickets"]))
    return None


def delete_averages(directory, max_count):
    """Removes the snapshots of a finished run."""
    for count in range(max_count + 1):
        if os.path.exists(_path(directory, count)):
            os.remove(_path(directory, count))
