"""The documentation site builds in strict mode; README and docs links resolve.

`mkdocs build --strict` (configured by mkdocs.yml) fails on a broken link
or anchor, an unknown cross-reference (`[ITOP][keras_dst.ITOP]`), a page
missing from the navigation, a docstring the Google-style parser cannot
read, or a results table that a page includes and that is gone. The build
imports keras_dst; it runs once per suite, in the JAX process (the other
backends load and validate the same configuration, which costs a second).
The other tests are cheap and run on every backend: the README and the
docs pages as GitHub renders them (every relative link names a file of
the repository), the navigation lists every page, and the API reference
covers exactly the declared public API.
"""

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time

import keras
from absl.testing import absltest

from tests.api_test import PUBLIC_API

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
CONFIG = os.path.join(ROOT, "mkdocs.yml")
HOOK = os.path.join(DOCS, "hooks", "keras_dst_docs.py")

# Markdown links and images: [text](target) and ![alt](target).
LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
INCLUDE = re.compile(r"^<!--[ \t]*include-table:[ \t]*(\S+)", re.MULTILINE)
# The build's environment: one backend, MkDocs' notices off.
BUILD_ENV = {"KERAS_BACKEND": "jax", "NO_MKDOCS_2_WARNING": "1"}


def relative_links(path):
    """The relative link targets of a Markdown file, anchors dropped."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    # Code blocks hold code, not links.
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    targets = LINK.findall(text) + INCLUDE.findall(text)
    return [
        t.split("#")[0]
        for t in targets
        if not re.match(r"^[a-z][a-z0-9+.-]*:|^#", t) and t.split("#")[0]
    ]


def docs_pages():
    """Every Markdown page under docs/, relative to docs/."""
    pages = []
    for folder, dirs, files in os.walk(DOCS):
        dirs[:] = [d for d in dirs if d != "hooks"]
        for name in files:
            if name.endswith(".md"):
                path = os.path.join(folder, name)
                pages.append(os.path.relpath(path, DOCS).replace(os.sep, "/"))
    return sorted(pages)


def load_hook():
    spec = importlib.util.spec_from_file_location("keras_dst_docs", HOOK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nav_paths(nav):
    """The page paths of a MkDocs nav (a list of str or {title: value})."""
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        if isinstance(value, list):
            yield from nav_paths(value)
        else:
            yield value


class ReadmeTest(absltest.TestCase):
    def test_readme_links_resolve(self):
        readme = os.path.join(ROOT, "README.md")
        links = relative_links(readme)
        self.assertGreater(len(links), 10)  # the table of contents
        missing = [t for t in links if not os.path.exists(ROOT + "/" + t)]
        self.assertEqual(missing, [], "README links to missing files")

    def test_readme_is_short(self):
        # Issue 28: the README is an entry point; the rest is in docs/.
        with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
            self.assertLessEqual(len(f.read().splitlines()), 200)


class DocsTest(absltest.TestCase):
    def test_docs_links_resolve_in_the_repository(self):
        # As GitHub shows the pages: every relative link names a file of
        # the repository, except the API pages the build generates.
        missing = []
        for page in docs_pages():
            folder = os.path.dirname(os.path.join(DOCS, page))
            for target in relative_links(os.path.join(DOCS, page)):
                path = os.path.normpath(os.path.join(folder, target))
                generated = path.startswith(os.path.join(DOCS, "api") + os.sep)
                if not generated and not os.path.exists(path):
                    missing.append(f"{page}: {target}")
        self.assertEqual(missing, [])

    def test_nav_lists_every_page(self):
        import yaml

        with open(CONFIG, encoding="utf-8") as f:
            config = yaml.safe_load(f)
        listed = set(nav_paths(config["nav"]))
        self.assertEqual(sorted(set(docs_pages()) - listed), [])
        self.assertEqual(
            sorted(p for p in listed if p.endswith(".md") and "/" not in p),
            [
                "CONTRIBUTING.md",
                "getting-started.md",
                "guarantees.md",
                "index.md",
            ],
        )

    def test_api_reference_is_the_public_api(self):
        # The pages come from `__all__` at build time; they must hold
        # exactly the API that tests/api_test.py declares.
        documented = set()
        for _, members, _ in load_hook().api_pages().values():
            documented.update(name for name, _ in members)
        # Subpackages get a page of their own, not an entry.
        subpackages = {m.split(".")[1] for m in PUBLIC_API if "." in m}
        skip = subpackages | {"__version__"}
        expected = {
            f"{module}.{name}"
            for module, names in PUBLIC_API.items()
            for name in names
            if module != "keras_dst" or name not in skip
        }
        self.assertEqual(sorted(documented), sorted(expected))

    def test_strict_build(self):
        if keras.backend.backend() != "jax":
            # One build per suite run: here, the configuration (theme,
            # plugins, hook, nav) loads and validates.
            from mkdocs.config import load_config

            config = load_config(CONFIG)
            self.assertTrue(config.strict)
            (hook,) = config.hooks.values()
            self.assertTrue(callable(hook.on_files))
            self.assertIn("mkdocstrings", config.plugins)
            return
        with tempfile.TemporaryDirectory() as site:
            start = time.time()
            result = subprocess.run(
                [sys.executable, "-m", "mkdocs", "build", "--strict"]
                + ["-f", CONFIG, "-d", site],
                cwd=ROOT,
                env=dict(os.environ, **BUILD_ENV),
                capture_output=True,
                text=True,
                timeout=300,
            )
            took = time.time() - start
            self.assertEqual(result.returncode, 0, result.stderr[-5000:])
            self.assertNotIn("WARNING", result.stderr)
            # The generated pieces are in the site.
            with open(os.path.join(site, "api", "layers", "index.html")) as f:
                api = f.read()
            self.assertIn("keras_dst.layers.SparseDense", api)
            self.assertNotIn("{sparse_arguments}", api)
            deploy = os.path.join(site, "guides", "deployment", "index.html")
            with open(deploy) as f:
                self.assertIn("itop_rigl_block_1x4_s0.95", f.read())
            self.assertTrue(
                os.path.exists(
                    os.path.join(site, "benchmarks", "results", "deploy.png")
                )
            )
            print(f"mkdocs build --strict: {took:.1f} s")


if __name__ == "__main__":
    absltest.main()
