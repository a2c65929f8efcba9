"""`save_model`: a `.keras` archive with deflate compression, optionally
with float16 values, that the stock `keras.saving.load_model` reads."""

import io
import json
import os
import shutil
import tempfile
import zipfile

import h5py
import keras
import numpy as np

from keras_dst.convert.model_copy import sparse_record
from keras_dst.convert.model_copy import wrap_config
from keras_dst.export.strip import strip
from keras_dst.layers.model_walk import sparse_layers
from keras_dst.utils.checks import check_choice

# The weights and config members of a `.keras` archive (the documented
# file format).
_WEIGHTS_MEMBER = "model.weights.h5"
_CONFIG_MEMBER = "config.json"
_VALUES = (None, "float16")
_CHUNK = 1 << 20


def save_model(model, path, compress=True, values=None):
    """Saves `model` as a `.keras` archive, compressed.

    Keras writes a `.keras` file as a zip archive without compression
    (`ZIP_STORED`), so a sparse model takes as much room as a dense one:
    every inactive weight is a stored 0.0. This function writes the same
    archive (same members, same order, same content) with zip deflate
    compression: the zeros, masks and explored unions shrink to almost
    nothing. The file loads with the stock `keras.saving.load_model`
    (import `keras_dst` first, as for any model holding its layers) with
    every variable bit-identical (weights, masks, explored unions,
    optimizer state), so training can resume from it exactly. Gradient
    probes without momentum are saved as zeros by every Keras save path
    (this one, `model.save`, `BackupAndRestore`) unless an update is
    about to read them: they hold only the last step's dense gradient
    (see `SparseLayer.save_own_variables`).

    Layers that `keras_dst.sparsify` made sparse inside other layers (a
    keras-hub backbone's attention and feed-forward layers, the layers of
    a subclassed model) are not described by the model's config, which
    only says how to build the plain model. This function records them in
    the archive's `config.json` (the model's config, wrapped in a
    `keras_dst>SparsifiedModel` entry listing them), so that
    `keras.saving.load_model` builds the model, turns them sparse again
    and loads every variable. `model.save(path)` writes no such record:
    Keras then fails to load its file ("A total of N objects could not be
    loaded"). `model.save_weights` and `BackupAndRestore` need none:
    they load into a model that is already sparse.

    `values="float16"` writes a smaller deployable copy instead:

    * a model holding sparse layers is first converted with
      `keras_dst.strip(model)` (plain Keras layers, kernels with exact
      zeros, no masks): the file needs no `keras_dst` to load, but it can
      no longer resume sparse training. `model` itself is not changed.
    * every float32 weight is stored as float16 in the archive's weights
      file; the stock loader casts the values back into the layers'
      float32 variables. The loaded weights are the values rounded to
      float16 (about 3 significant digits; zeros stay exact zeros), so
      predictions change slightly: measure the accuracy of the loaded
      model before deploying it. A variable with a finite value beyond
      the float16 range (|x| > 65504) is kept as float32, unrounded.

    Integer variables (counters, quantized weights) are stored unchanged.
    The file is written to a temporary file in the target directory and
    then moved over `path`, so an interrupted save never leaves a partial
    archive at `path`.

    Args:
        model: a `keras.Model`.
        path: file path ending in `.keras` (str or `os.PathLike`);
            overwritten if it exists.
        compress: bool. `True` (default): zip deflate compression.
            `False`: stored as Keras stores it (with `values=None`, this
            is exactly `model.save(path)`).
        values: `None` (default): weights as they are. `"float16"`: the
            deployable copy described above.

    Returns:
        `path`.

    Example:

    ```python
    model = keras.Sequential([
        keras.Input((784,)),
        keras_dst.layers.SparseDense(300, activation="relu"),
        keras_dst.layers.SparseDense(10),
    ])
    keras_dst.initialize_masks(model, 0.9)
    keras_dst.save_model(model, "sparse.keras")  # ~10x smaller
    restored = keras.saving.load_model("sparse.keras")  # bit-identical
    keras_dst.save_model(model, "deploy.keras", values="float16")
    ```
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a keras.Model. "
            f"Received: model of type {type(model).__name__}."
        )
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not path.endswith(".keras"):
        raise ValueError(
            "`path` must be a file path ending in '.keras'. "
            f"Received: path={path!r}."
        )
    if not isinstance(compress, bool):
        raise TypeError(
            "`compress` must be True or False. "
            f"Received: compress={compress!r}."
        )
    check_choice(values, _VALUES, "values")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"The folder of `path` does not exist: {directory!r}. "
            f"Received: path={path!r}."
        )

    if values == "float16" and sparse_layers(model):
        model = strip(model)
    record = sparse_record(model)
    if not compress and values is None and not record:
        model.save(path)
        return path

    with tempfile.TemporaryDirectory() as scratch:
        saved = os.path.join(scratch, "model.keras")
        model.save(saved)
        handle, partial = tempfile.mkstemp(
            prefix=".", suffix=".keras.partial", dir=directory
        )
        os.close(handle)
        try:
            shutil.copymode(saved, partial)  # mkstemp's mode is 0600
            _rewrite(saved, partial, compress, values, scratch, record)
            os.replace(partial, path)
        except BaseException:
            if os.path.exists(partial):
                os.remove(partial)
            raise
    return path


def _rewrite(source, target, compress, values, scratch, record):
    """Copies the archive `source` to `target` member by member (the
    config wrapped with `record`, if any)."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    found = False
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        names = zin.namelist()
        for info in zin.infolist():
            out = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            out.external_attr = info.external_attr
            if info.is_dir():
                zout.writestr(out, b"")
                continue
            out.compress_type = method
            if record and info.filename == _CONFIG_MEMBER:
                config = wrap_config(json.loads(zin.read(info)), record)
                data = json.dumps(config).encode("utf-8")
                _copy_member(io.BytesIO(data), zout, out, len(data))
            elif values == "float16" and info.filename == _WEIGHTS_MEMBER:
                found = True
                original = zin.extract(info, os.path.join(scratch, "in"))
                converted = os.path.join(scratch, "float16.h5")
                _float16_weights(original, converted)
                size = os.path.getsize(converted)
                with open(converted, "rb") as f_in:
                    _copy_member(f_in, zout, out, size)
            else:
                with zin.open(info) as f_in:
                    _copy_member(f_in, zout, out, info.file_size)
    if record and _CONFIG_MEMBER not in names:
        raise RuntimeError(
            f"Keras changed the .keras format: no '{_CONFIG_MEMBER}' "
            "member to record the layers made sparse in place in."
        )
    if values == "float16" and not found:
        raise RuntimeError(
            f"Keras changed the .keras format: no '{_WEIGHTS_MEMBER}' "
            "member to store float16 values in. Use values=None."
        )


def _copy_member(f_in, zout, info, size):
    large = size >= zipfile.ZIP64_LIMIT
    with zout.open(info, "w", force_zip64=large) as f_out:
        shutil.copyfileobj(f_in, f_out, _CHUNK)


def _float16_weights(source, target):
    """Copies the HDF5 file `source` to `target` with float32 datasets
    stored as float16 (unless a finite value overflows float16)."""
    with h5py.File(source, "r") as src, h5py.File(target, "w") as dst:
        _copy_attrs(src, dst)

        def visit(name, obj):
            if isinstance(obj, h5py.Group):
                _copy_attrs(obj, dst.require_group(name))
                return
            parent = dst.require_group(obj.parent.name)
            base = name.rsplit("/", 1)[-1]
            if obj.dtype != np.float32 or "dtype" in obj.attrs:
                src.copy(obj, parent, name=base)
                return
            data = obj[()]
            with np.errstate(over="ignore"):
                half = np.asarray(data).astype(np.float16)
            if np.array_equal(np.isfinite(half), np.isfinite(data)):
                data = half
            _copy_attrs(obj, parent.create_dataset(base, data=data))

        src.visititems(visit)


def _copy_attrs(source, target):
    for key, value in source.attrs.items():
        target.attrs[key] = value
