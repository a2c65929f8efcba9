"""`export_litert`: a checked, sparse `.tflite` file from a sparse model.

Also a command line entry point, used on the JAX backend to convert in a
TensorFlow process:

    KERAS_BACKEND=tensorflow python -m keras_dst.export.litert \\
        --model stripped.keras --output model.tflite [--quantize dynamic_int8]
"""

import argparse
import dataclasses
import importlib.util
import os
import subprocess
import sys
import tempfile
import warnings

import keras
import numpy as np

from keras_dst.convert.sparsify import check_model
from keras_dst.export import litert_inspect
from keras_dst.export.strip import strip

QUANTIZE_MODES = (None, "dynamic_int8")
# Default `rtol`: the largest |LiteRT - Keras| allowed, as a fraction of
# the Keras outputs' largest magnitude. float32 kernels differ from XLA's
# by rounding only (~1e-7 measured); int8 dynamic-range quantization
# moves outputs by ~1% on small MLPs.
DEFAULT_RTOL = {None: 1e-4, "dynamic_int8": 5e-2}
_DEFAULT_BATCH = 8


@dataclasses.dataclass(frozen=True)
class LiteRTExport:
    """What `export_litert` wrote and checked.

    Attributes:
        path: the `.tflite` file.
        bytes: its size in bytes.
        quantize: `None` or `"dynamic_int8"`.
        interpreter: `"ai_edge_litert"` (the `ai-edge-litert` package) or
            `"tf.lite"` (TensorFlow's deprecated `tf.lite.Interpreter`),
            whichever ran the check.
        op_resolver: `"default"` (LiteRT's default, with the XNNPACK
            delegate) or `"builtin_without_default_delegates"` (the
            built-in kernels; used for int8 files with sparse weights,
            which XNNPACK runs wrongly: run the file that way too).
        max_abs_error: the largest |LiteRT - Keras| on the sample.
        output_scale: the largest |Keras output| on the sample.
        tolerance: the bound `max_abs_error` was checked against
            (`rtol * output_scale`).
        layer_formats: layer path -> how its weight is stored:
            `"block_sparse"` (sparse kernel, fast), `"csr_densify"`
            (smaller file, densified at load: dense speed), `"dense"`,
            `"sparse"` (other sparse format) or `"unmatched"` (no weight
            of its size in the file, e.g. folded into another op).
    """

    path: str
    bytes: int
    quantize: str | None
    interpreter: str
    op_resolver: str
    max_abs_error: float
    output_scale: float
    tolerance: float
    layer_formats: dict

    def __str__(self):
        lines = [
            f"{self.path}: {self.bytes:,} bytes, quantize={self.quantize}, "
            f"max |LiteRT - Keras| = {self.max_abs_error:.3g} "
            f"(tolerance {self.tolerance:.3g}, {self.interpreter}, "
            f"{self.op_resolver} kernels)"
        ]
        width = max((len(k) for k in self.layer_formats), default=0)
        for name, fmt in self.layer_formats.items():
            lines.append(f"  {name:<{width}}  {fmt}")
        return "\n".join(lines)


def _check_args(path, quantize, rtol):
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path).endswith(
        ".tflite"
    ):
        raise ValueError(
            "`path` must be a file path ending in '.tflite'. "
            f"Received: path={path!r}."
        )
    if quantize not in QUANTIZE_MODES:
        raise ValueError(
            f"`quantize` must be one of {QUANTIZE_MODES} (None: float32; "
            "'dynamic_int8': int8 weights, float activations). "
            f"Received: quantize={quantize!r}."
        )
    if rtol is None:
        return DEFAULT_RTOL[quantize]
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)):
        raise TypeError(f"`rtol` must be a float >= 0. Received: {rtol!r}.")
    if not np.isfinite(rtol) or rtol < 0:
        raise ValueError(f"`rtol` must be a float >= 0. Received: {rtol!r}.")
    return float(rtol)


def _require_tensorflow():
    if importlib.util.find_spec("tensorflow") is None:
        raise ImportError(
            "`export_litert` needs TensorFlow: the LiteRT converter ships "
            "in it (on the JAX backend it runs in a subprocess with "
            "KERAS_BACKEND=tensorflow). Install it with "
            "`pip install tensorflow` (or `pip install keras-dst[litert]`)."
        )


def _converter_options(converter, quantize):
    import tensorflow as tf

    optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    if quantize == "dynamic_int8":
        # DEFAULT without a representative dataset: dynamic-range int8.
        optimizations.append(tf.lite.Optimize.DEFAULT)
    converter.optimizations = optimizations
    return converter


def convert_in_process(model, quantize):
    """The `.tflite` bytes of a plain Keras `model` (TensorFlow backend)."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        saved = os.path.join(tmp, "saved_model")
        model.export(saved, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        return _converter_options(converter, quantize).convert()


def _convert_in_subprocess(model, quantize):
    """Saves `model` and converts it with a TensorFlow-backend Python."""
    _require_tensorflow()
    with tempfile.TemporaryDirectory() as tmp:
        keras_path = os.path.join(tmp, "stripped.keras")
        out_path = os.path.join(tmp, "model.tflite")
        model.save(keras_path)
        env = dict(os.environ, KERAS_BACKEND="tensorflow")
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        root = os.path.dirname(
            os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        )
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (root, env.get("PYTHONPATH")) if p
        )
        command = [
            sys.executable,
            "-m",
            "keras_dst.export.litert",
            "--model",
            keras_path,
            "--output",
            out_path,
        ]
        if quantize is not None:
            command += ["--quantize", quantize]
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0 or not os.path.exists(out_path):
            tail = "\n".join(done.stderr.strip().splitlines()[-15:])
            raise RuntimeError(
                "The LiteRT conversion in a TensorFlow subprocess failed "
                f"(exit code {done.returncode}). Its command: "
                f"KERAS_BACKEND=tensorflow {' '.join(command)}. A model "
                "with custom layers needs them registered with "
                "`keras.saving.register_keras_serializable` in a module "
                "that subprocess imports. Last lines of its output:\n"
                f"{tail}"
            )
        with open(out_path, "rb") as f:
            return f.read()


def _make_interpreter(content, builtin_only):
    """(interpreter, its name); the built-in kernels without XNNPACK if
    `builtin_only`."""
    try:
        from ai_edge_litert.interpreter import Interpreter
        from ai_edge_litert.interpreter import OpResolverType

        name = "ai_edge_litert"
    except ImportError:
        _require_tensorflow()
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
        OpResolverType = tf.lite.experimental.OpResolverType
        name = "tf.lite"
    resolver = (
        OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        if builtin_only
        else OpResolverType.AUTO
    )
    with warnings.catch_warnings():
        # tf.lite.Interpreter warns that it is deprecated (we say which
        # interpreter ran in the result).
        warnings.simplefilter("ignore")
        interpreter = Interpreter(
            model_content=content, experimental_op_resolver_type=resolver
        )
    return interpreter, name


def _run_litert(content, inputs, input_names, builtin_only):
    """Runs the file's only signature; returns (outputs, interpreter)."""
    interpreter, name = _make_interpreter(content, builtin_only)
    runner = interpreter.get_signature_runner()
    keys = list(runner.get_input_details())
    if len(keys) != len(inputs):
        raise ValueError(
            f"The .tflite file takes {len(keys)} inputs {keys}; the "
            f"sample has {len(inputs)}."
        )
    if len(keys) == 1:
        feed = {keys[0]: inputs[0]}
    elif sorted(keys) == sorted(input_names):
        feed = dict(zip(input_names, inputs, strict=True))
    else:
        raise ValueError(
            f"Cannot match the .tflite inputs {keys} to the model's inputs "
            f"{input_names}: give the model's `keras.Input`s distinct names."
        )
    result = runner(**feed)

    def order(key):
        tail = key.rsplit("_", 1)[-1]
        return (0, int(tail), key) if tail.isdigit() else (1, 0, key)

    return [np.asarray(result[k]) for k in sorted(result, key=order)], name


def _sample_inputs(model, sample):
    """The sample as a list of float/int numpy arrays, one per input."""
    if sample is None:
        rng = np.random.default_rng(0)
        arrays = []
        for tensor in model.inputs:
            shape = tuple(tensor.shape)[1:]
            dtype = np.dtype(keras.backend.standardize_dtype(tensor.dtype))
            if any(d is None for d in shape) or dtype.kind != "f":
                raise ValueError(
                    "`sample` is needed for a model whose input "
                    f"'{tensor.name}' has shape {tuple(tensor.shape)} and "
                    f"dtype {dtype.name}: pass a batch, e.g. "
                    "`sample=x_test[:32]`."
                )
            arrays.append(
                rng.standard_normal((_DEFAULT_BATCH,) + shape).astype(dtype)
            )
        return arrays
    if isinstance(sample, dict):
        sample = [sample[t.name] for t in model.inputs]
    if not isinstance(sample, (list, tuple)):
        sample = [sample]
    arrays = [np.asarray(keras.ops.convert_to_numpy(s)) for s in sample]
    if len(arrays) != len(model.inputs):
        raise ValueError(
            f"`sample` must hold one array per model input "
            f"({len(model.inputs)}). Received {len(arrays)}."
        )
    return arrays


def export_litert(model, path, quantize=None, sample=None, rtol=None):
    """Writes a sparse `.tflite` (LiteRT) file and checks it runs right.

    The model's masks are applied and dropped (`keras_dst.strip`), then
    TensorFlow's converter writes it with
    `tf.lite.Optimize.EXPERIMENTAL_SPARSITY`: each constant weight that is
    at least ~30% zeros is stored sparse. A weight whose zeros mostly fall
    in whole blocks of 4 consecutive input rows of one output column (1x16
    for int8) keeps a block format that the fully-connected kernel runs
    sparse (`"block_sparse"`, faster); any other sparse weight is stored
    as CSR and made dense by a DENSIFY op when the interpreter loads it
    (`"csr_densify"`: smaller file, dense speed). Random masks rarely form
    blocks above ~3.4% density; masks made of (4, 1) blocks do.

    The file is then run on `sample` by the LiteRT interpreter
    (`ai_edge_litert` if installed, else TensorFlow's `tf.lite`) and its
    outputs compared with the Keras model's: if
    `max |LiteRT - Keras| > rtol * max |Keras|` an error is raised (the
    file is kept at `path` for inspection; do not deploy it).

    int8 with sparse weights: LiteRT's default XNNPACK delegate fails or
    gives wrong outputs (measured ~16x off) on such files, so they are
    checked with the built-in kernels only
    (`OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES`, reported in
    `op_resolver`), and a warning is issued if the default resolver
    disagrees: run the file with the built-in kernels.

    Works on both backends. On TensorFlow the conversion runs in this
    process; on JAX the stripped model is saved to a temporary `.keras`
    file and converted by `python -m keras_dst.export.litert` with
    `KERAS_BACKEND=tensorflow` (TensorFlow must be installed; custom
    layers must be registered serializables that process can import).
    The Keras outputs are always computed here.

    Args:
        model: a built Sequential or Functional model, sparse layers or not.
        path: the output file, ending in `.tflite` (overwritten; left
            untouched if the conversion fails).
        quantize: `None` (float32) or `"dynamic_int8"` (int8 weights,
            float activations: ~4x smaller again).
        sample: inputs to check with (an array, or a list/dict of arrays
            for several inputs), e.g. `x_test[:32]`. `None`: a batch of 8
            standard normal samples (float inputs of known shape only).
        rtol: allowed `max |LiteRT - Keras|` as a fraction of the largest
            Keras output magnitude. `None`: 1e-4 for float32, 5e-2 for
            `"dynamic_int8"`.

    Returns:
        A `LiteRTExport` (path, bytes, interpreter, max_abs_error,
        layer_formats, ...); `print` it for a per-layer table.

    Example:

    ```python
    result = keras_dst.export_litert(model, "model.tflite", sample=x[:32])
    print(result.bytes, result.max_abs_error)
    print(result.layer_formats)  # {"sparse_dense": "csr_densify", ...}
    ```
    """
    rtol = _check_args(path, quantize, rtol)
    path = os.fspath(path)
    _require_tensorflow()
    check_model(model, "export_litert")
    inputs = _sample_inputs(model, sample)
    stripped = strip(model)
    expected = stripped(
        inputs[0] if len(inputs) == 1 else inputs, training=False
    )
    expected = [
        np.asarray(keras.ops.convert_to_numpy(t), np.float64)
        for t in keras.tree.flatten(expected)
    ]
    if keras.backend.backend() == "tensorflow":
        content = convert_in_process(stripped, quantize)
    else:
        content = _convert_in_subprocess(stripped, quantize)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "wb") as f:
        f.write(content)

    records = litert_inspect.weight_formats(content)
    formats = litert_inspect.layer_formats(stripped, records)
    any_sparse = any(r["format"] != litert_inspect.DENSE for r in records)
    builtin_only = quantize is not None and any_sparse
    input_names = [t.name for t in stripped.inputs]
    try:
        outputs, interpreter = _run_litert(
            content, inputs, input_names, builtin_only
        )
    except RuntimeError as error:
        raise RuntimeError(
            f"The LiteRT interpreter could not run {path} (kept there "
            f"for inspection; do not deploy it): {error}"
        ) from error
    if len(outputs) != len(expected):
        raise RuntimeError(
            f"{path} has {len(outputs)} outputs, the Keras model "
            f"{len(expected)}."
        )
    scale = max(float(np.max(np.abs(e), initial=0.0)) for e in expected)
    error = 0.0
    for out, ref in zip(outputs, expected, strict=True):
        if out.shape != ref.shape:
            raise RuntimeError(
                f"{path}: an output has shape {out.shape}, the Keras "
                f"model's {ref.shape}."
            )
        diff = np.abs(out.astype(np.float64) - ref)
        error = max(error, float(np.max(diff, initial=0.0)))
    tolerance = rtol * scale
    if not error <= tolerance:
        why = ""
        if quantize is not None:
            why = (
                " int8 weights move outputs by ~1% of their scale; "
                "int8 with sparse weights is run with the built-in "
                "kernels only and can still be wrong. Export with "
                "quantize=None, or pass a larger `rtol` if this error "
                "is acceptable."
            )
        raise RuntimeError(
            f"The .tflite file disagrees with the Keras model: "
            f"max |LiteRT - Keras| = {error:.4g} on the sample, above the "
            f"tolerance {tolerance:.4g} (rtol={rtol} x largest output "
            f"magnitude {scale:.4g}; quantize={quantize!r}, interpreter "
            f"{interpreter}).{why} The file was kept at {path} for "
            "inspection; do not deploy it."
        )
    if builtin_only:
        _warn_if_default_resolver_differs(
            content, inputs, input_names, expected, tolerance, path
        )
    return LiteRTExport(
        path=path,
        bytes=len(content),
        quantize=quantize,
        interpreter=interpreter,
        op_resolver=(
            "builtin_without_default_delegates" if builtin_only else "default"
        ),
        max_abs_error=error,
        output_scale=scale,
        tolerance=tolerance,
        layer_formats=formats,
    )


def _warn_if_default_resolver_differs(
    content, inputs, input_names, expected, tolerance, path
):
    try:
        outputs, _ = _run_litert(content, inputs, input_names, False)
        error = max(
            float(np.max(np.abs(o.astype(np.float64) - e), initial=0.0))
            for o, e in zip(outputs, expected, strict=True)
        )
        problem = (
            None
            if error <= tolerance
            else f"max |LiteRT - Keras| = {error:.4g} with it"
        )
    except (RuntimeError, ValueError) as e:
        problem = f"it fails: {e}"
    if problem is not None:
        warnings.warn(
            f"{path} (int8 with sparse weights) is right with LiteRT's "
            "built-in kernels only; the default XNNPACK delegate is wrong "
            f"({problem}). Create the interpreter with "
            "experimental_op_resolver_type=OpResolverType."
            "BUILTIN_WITHOUT_DEFAULT_DELEGATES, or export with "
            "quantize=None.",
            stacklevel=3,
        )


def main(argv=None):
    """`python -m keras_dst.export.litert --model M.keras --output F.tflite
    [--quantize dynamic_int8]`, with KERAS_BACKEND=tensorflow: converts a
    saved plain Keras model (no checks; `export_litert` does those)."""
    parser = argparse.ArgumentParser(
        description="Convert a .keras model to a sparse .tflite file."
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument(
        "--quantize", default=None, choices=[q for q in QUANTIZE_MODES if q]
    )
    args = parser.parse_args(argv)
    if keras.backend.backend() != "tensorflow":
        parser.error(
            "run with KERAS_BACKEND=tensorflow (the converter needs it); "
            f"the backend is {keras.backend.backend()!r}."
        )
    model = keras.saving.load_model(args.model, compile=False)
    content = convert_in_process(model, args.quantize)
    with open(args.output, "wb") as f:
        f.write(content)
    return 0


if __name__ == "__main__":
    sys.exit(main())
