"""The declared public API, and that code outside keras_dst/ keeps to it.

The public API is `keras_dst.__all__` plus the `__all__` of the public
subpackages it lists. `PUBLIC_API` below is the expected list: a change
to the API must change it too, on purpose. Examples, benchmarks and tests
may only import or reach (through `keras_dst.<name>...` attribute chains)
public names; tests of implementation modules are listed in
`INTERNAL_TESTS` with the reason.
"""

import ast
import inspect
import os
import types

from absl.testing import absltest

import keras_dst
from tests.test_case import TestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PUBLIC_API = {
    "keras_dst": [
        "DynamicSparsityCallback",
        "GMP",
        "ITOP",
        "LayerOutcome",
        "LiteRTExport",
        "Method",
        "Preset",
        "RigL",
        "SET",
        "SNFS",
        "SparseUpdater",
        "SparsitySummaries",
        "Static",
        "SupTickets",
        "UpdateRecord",
        "__version__",
        "criteria",
        "export_litert",
        "get_method",
        "initialize_masks",
        "layer_path",
        "layers",
        "masks",
        "method_names",
        "optimizers",
        "plot_history",
        "register_method",
        "save_model",
        "schedules",
        "sparse_layers",
        "sparsify",
        "sparsity_report",
        "strip",
        "summary",
        "superposition",
        "testing",
    ],
    "keras_dst.criteria": [
        "Criterion",
        "ScoreInputs",
        "get_growth",
        "get_prune",
        "growth_criteria",
        "layer_key",
        "prune_criteria",
        "register_growth",
        "register_prune",
        "select_largest",
        "select_smallest",
        "uniform_scores",
    ],
    "keras_dst.layers": [
        "SPARSE_TWINS",
        "SparseConv1D",
        "SparseConv2D",
        "SparseConv2DTranspose",
        "SparseConv3D",
        "SparseDense",
        "SparseDepthwiseConv2D",
        "SparseEinsumDense",
        "SparseEmbedding",
        "SparseLayer",
        "SparseMultiHeadAttention",
        "SparseReversibleEmbedding",
        "masked_weight_property",
        "sparse_twin",
    ],
    "keras_dst.masks": [
        "WEIGHT_INITS",
        "active_count",
        "allocate",
        "er_densities",
        "erk_densities",
        "is_block_mask",
        "magnitude_mask",
        "random_mask",
        "sparse_init_scale",
        "target_count",
    ],
    "keras_dst.optimizers": [
        "register_zero_preserving",
        "slot_variables",
    ],
    "keras_dst.schedules": [
        "CyclicLearningRate",
        "DROP_SCHEDULES",
        "constant_drop_fraction",
        "cosine_drop_fraction",
        "cubic_sparsity",
    ],
    "keras_dst.superposition": [
        "AVERAGES",
        "CyclicPhases",
        "TicketAverager",
        "caa",
        "cima",
        "global_magnitude_masks",
        "plan_cycles",
        "recalibrate_batchnorm",
    ],
    "keras_dst.testing": [
        "run_sparse_layer_test",
    ],
}

# Tests of implementation modules (allowed to import them), and why.
INTERNAL_TESTS = {
    "tests/keras_internals_test.py": "guards the Keras internals module",
    "tests/selection_test.py": "compiles the selection kernels with the "
    "engine's compile_function, as the update does",
    "tests/packed_union_test.py": "checks the packed-bit storage of the "
    "unions (keras_dst.masks.packed) against numpy's packbits",
}

OUTSIDE = ("examples", "benchmarks", "tests")


def public_api():
    """{namespace: sorted __all__} for keras_dst and its public
    subpackages."""
    api = {"keras_dst": sorted(keras_dst.__all__)}
    for name in keras_dst.__all__:
        value = getattr(keras_dst, name)
        if isinstance(value, types.ModuleType):
            api[value.__name__] = sorted(value.__all__)
    return api


def attribute_chain(node):
    """`keras_dst.a.b` as ["keras_dst", "a", "b"], else None."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id == "keras_dst":
        return ["keras_dst"] + names[::-1]
    return None


def non_public_uses(path, api):
    """`(line, what)` for each use of a non-public keras_dst name."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)

    def allowed(parts):
        # parts: ["keras_dst", name, sub-name, ...]
        if len(parts) == 1:
            return True
        namespace = "keras_dst"
        for part in parts[1:]:
            if part.startswith("__") and part.endswith("__"):
                return True  # module metadata (__all__, __version__)
            if part not in api.get(namespace, ()):
                return False
            child = f"{namespace}.{part}"
            if child not in api:
                return True  # a public object: its attributes are its own
            namespace = child
        return True

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] != "keras_dst":
                continue
            if ".".join(parts) not in api:
                found.append((node.lineno, f"from {node.module} import"))
                continue
            for alias in node.names:
                if alias.name not in api[node.module]:
                    found.append((node.lineno, f"{node.module}.{alias.name}"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "keras_dst" and alias.name not in api:
                    found.append((node.lineno, f"import {alias.name}"))
        elif isinstance(node, ast.Attribute):
            parts = attribute_chain(node)
            if parts and not allowed(parts):
                found.append((node.lineno, ".".join(parts)))
    return sorted(set(found))


class PublicApiTest(TestCase):
    def test_public_api_is_as_declared(self):
        self.assertEqual(
            public_api(),
            {k: sorted(v) for k, v in PUBLIC_API.items()},
            "The public API changed. If on purpose, update PUBLIC_API in "
            "tests/api_test.py (and the docs).",
        )

    def test_public_names_exist_and_are_documented(self):
        for namespace, names in public_api().items():
            module = __import__(namespace, fromlist=["_"])
            for name in names:
                value = getattr(module, name)  # AttributeError if missing
                if inspect.isclass(value) or inspect.isfunction(value):
                    self.assertTrue(
                        (value.__doc__ or "").strip(),
                        f"{namespace}.{name} has no docstring",
                    )

    def test_outside_code_uses_only_public_names(self):
        api = public_api()
        problems = []
        checked = 0
        for top in OUTSIDE:
            for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
                for file in sorted(files):
                    if not file.endswith(".py"):
                        continue
                    path = os.path.join(dirpath, file)
                    relative = os.path.relpath(path, ROOT)
                    if relative in INTERNAL_TESTS:
                        continue
                    checked += 1
                    for line, what in non_public_uses(path, api):
                        problems.append(f"{relative}:{line}: {what}")
        self.assertGreater(checked, 10)
        self.assertEqual(problems, [], "non-public keras_dst names used")

    def test_the_checker_finds_private_uses(self):
        # The check above must be able to fail.
        path = os.path.join(self.temp_dir(), "bad.py")
        with open(path, "w") as f:
            f.write(
                "import keras_dst\n"
                "from keras_dst.callbacks.sparse_updater import SparseUpdater\n"
                "from keras_dst.masks import not_there\n"
                "keras_dst.utils.checks.check_choice\n"
                "keras_dst.SET(0.9)._origin\n"
                "keras_dst.masks.allocate\n"
            )
        uses = [what for _, what in non_public_uses(path, public_api())]
        self.assertEqual(
            uses,
            [
                "from keras_dst.callbacks.sparse_updater import",
                "keras_dst.masks.not_there",
                "keras_dst.utils",
                "keras_dst.utils.checks",
                "keras_dst.utils.checks.check_choice",
            ],
        )


if __name__ == "__main__":
    absltest.main()
