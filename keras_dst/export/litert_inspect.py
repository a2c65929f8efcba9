"""How a `.tflite` file stores each weight, read from its flatbuffer.

Used by `keras_dst.export.litert`. The file is parsed with the `tflite`
flatbuffer schema that LiteRT ships (`ai_edge_litert.schema_py_generated`,
else TensorFlow's `tensorflow.lite.python.schema_py_generated`); nothing
is run. A weight is a constant tensor (one with buffer data) of rank >= 2
that an op reads. Its format:

- `"block_sparse"`: the tensor has a `sparsity` field whose `block_map` is
  not empty (e.g. 1x4 blocks for float32 fully-connected weights, 1x16
  for int8) and the op reads it directly: the sparse kernel runs on it
  (fast).
- `"csr_densify"`: the op reads the output of a DENSIFY op whose input is
  the stored sparse tensor (CSR): the file is smaller, but the weight is
  made dense again when the interpreter prepares the model (dense
  compute, no speed-up).
- `"sparse"`: a `sparsity` field without a block map read directly (not
  produced by the converter as of TF 2.21).
- `"dense"`: no `sparsity` field.

Keras weights are matched to the file's weights without their names (the
converter renames and fuses tensors): by element count and the multiset of
dimensions (layout-free: a Dense kernel `(in, out)` is `(out, in)` in the
file), then, among several such candidates, by the exact multiset of
non-zero float32 values, then by order.
"""

import keras
import numpy as np

from keras_dst.backend.keras_internals import sublayers

# Keys of `weight_formats` records and `layer_formats` values.
BLOCK_SPARSE = "block_sparse"
CSR_DENSIFY = "csr_densify"
SPARSE = "sparse"
DENSE = "dense"
UNMATCHED = "unmatched"


def _schema():
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:
        from tensorflow.lite.python import schema_py_generated
    return schema_py_generated


def _op_names(schema):
    return {
        value: name
        for name, value in vars(schema.BuiltinOperator).items()
        if not name.startswith("_")
    }


def _opcode_name(opcode, names):
    # Builtin codes above 127 live in `builtinCode`; older files use
    # `deprecatedBuiltinCode`; the larger of the two is the real one.
    code = max(opcode.builtinCode, opcode.deprecatedBuiltinCode)
    return names.get(code, str(code))


_DTYPES = {0: np.float32, 1: np.float16, 9: np.int8, 3: np.uint8}


def _buffer_bytes(model, tensor, content):
    buffer = model.buffers[tensor.buffer]
    if buffer.data is not None and len(buffer.data):
        return np.asarray(buffer.data, dtype=np.uint8).tobytes()
    offset = getattr(buffer, "offset", 0) or 0
    size = getattr(buffer, "size", 0) or 0
    if offset > 1 and size:  # large models keep buffers after the graph
        return content[offset : offset + size]
    return b""


def weight_formats(content):
    """The weights of a `.tflite` file and how each is stored.

    Args:
        content: the file's bytes.

    Returns:
        A list, in op order, of dicts with `shape` (the stored shape),
        `dtype` (numpy dtype name), `format` (see the module docstring),
        `op` (the op that reads it, e.g. "FULLY_CONNECTED") and `values`
        (the stored values as numpy, or None for an unknown dtype).
    """
    schema = _schema()
    names = _op_names(schema)
    model = schema.ModelT.InitFromPackedBuf(content, 0)
    records = []
    for graph in model.subgraphs or []:
        producers = {}
        for op in graph.operators or []:
            for out in op.outputs if op.outputs is not None else []:
                producers[int(out)] = op
        seen = set()
        for op in graph.operators or []:
            name = _opcode_name(model.operatorCodes[op.opcodeIndex], names)
            if name == "DENSIFY":
                continue
            for index in op.inputs if op.inputs is not None else []:
                index = int(index)
                if index < 0 or index in seen:
                    continue
                fmt = None
                producer = producers.get(index)
                if producer is not None:
                    code = model.operatorCodes[producer.opcodeIndex]
                    if _opcode_name(code, names) != "DENSIFY":
                        continue
                    index = int(producer.inputs[0])
                    fmt = CSR_DENSIFY
                tensor = graph.tensors[index]
                shape = [int(d) for d in tensor.shape]
                data = _buffer_bytes(model, tensor, content)
                if len(shape) < 2 or not data:
                    continue
                seen.add(index)
                if fmt is None:
                    sparsity = tensor.sparsity
                    if sparsity is None:
                        fmt = DENSE
                    elif sparsity.blockMap is not None and len(
                        sparsity.blockMap
                    ):
                        fmt = BLOCK_SPARSE
                    else:
                        fmt = SPARSE
                dtype = _DTYPES.get(tensor.type)
                values = None
                if dtype is not None:
                    values = np.frombuffer(data, dtype=dtype)
                records.append(
                    {
                        "shape": shape,
                        "dtype": None if dtype is None else dtype.__name__,
                        "format": fmt,
                        "op": name,
                        "values": values,
                    }
                )
    return records


def _leaf_weights(model):
    """(path, weight array) for the largest rank >= 2 weight of each leaf
    layer, in data-flow order; paths as `keras_dst.layer_path`."""
    found, seen = [], set()
    stack = [(layer, layer.name) for layer in reversed(sublayers(model))]
    while stack:
        layer, path = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        children = sublayers(layer)
        if children:
            stack.extend(
                (child, f"{path}/{child.name}") for child in reversed(children)
            )
            continue
        weights = [w for w in layer.weights if len(w.shape) >= 2]
        if weights:
            weight = max(weights, key=lambda w: int(np.prod(w.shape)))
            found.append((path, _to_numpy(weight)))
    return found


def _to_numpy(weight):
    return np.asarray(keras.ops.convert_to_numpy(weight), np.float32)


def _nonzero_sorted(values):
    values = np.asarray(values, np.float32).ravel()
    return np.sort(values[values != 0])


def layer_formats(model, records):
    """Maps each layer of `model` holding a rank >= 2 weight to the format
    of that weight in the file (`records` from `weight_formats`), or
    `"unmatched"` when the file has no weight of its size (e.g. folded
    into another op). Layers with several such weights report the
    largest."""
    free = list(range(len(records)))
    result = {}
    for path, weight in _leaf_weights(model):
        dims = sorted(weight.shape)
        candidates = [i for i in free if sorted(records[i]["shape"]) == dims]
        if len(candidates) > 1:
            target = _nonzero_sorted(weight)
            exact = [
                i
                for i in candidates
                if records[i]["dtype"] == "float32"
                and np.array_equal(
                    _nonzero_sorted(records[i]["values"]), target
                )
            ]
            candidates = exact or candidates
        if not candidates:
            result[path] = UNMATCHED
            continue
        free.remove(candidates[0])
        result[path] = records[candidates[0]]["format"]
    return result
