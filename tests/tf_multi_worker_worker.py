"""Worker for multi_process_test.py: one TensorFlow multi-worker process.

Joins a 2-worker `MultiWorkerMirroredStrategy` over 127.0.0.1 and builds
a sparse model under it. keras_dst refuses TF multi-worker training at
build: prints `REFUSED <message>` if it did, `BUILT` if not.

Usage: KERAS_BACKEND=tensorflow python tests/tf_multi_worker_worker.py
           INDEX PORT0 PORT1
"""

import json
import os
import sys

index, ports = int(sys.argv[1]), sys.argv[2:4]
os.environ["TF_CONFIG"] = json.dumps(
    {
        "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
        "task": {"type": "worker", "index": index},
    }
)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_dst  # noqa: E402


def main():
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    try:
        with strategy.scope():
            model = keras.Sequential(
                [keras.Input((8,)), keras_dst.layers.SparseDense(4)]
            )
    except RuntimeError as error:
        print("REFUSED " + " ".join(str(error).split()), flush=True)
        return
    print(f"BUILT {len(model.weights)}", flush=True)


if __name__ == "__main__":
    main()
