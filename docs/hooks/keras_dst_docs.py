"""MkDocs hook of the keras_dst site (`hooks:` in mkdocs.yml).

It keeps the site from copying anything the repository already holds:

1. The API reference is generated from `keras_dst.__all__` and the
   `__all__` of the public subpackages it lists: a new public name gets
   its entry without editing the docs. mkdocstrings renders each entry
   from its docstring.
2. `benchmarks/README.md` and `benchmarks/results/` (result pages, plots,
   JSON) are served from where they are in the repository, at the same
   place relative to `docs/` (`../benchmarks/results/deploy.md` becomes
   the site's `benchmarks/results/deploy/`). A page under `docs/` links to
   them as GitHub resolves links (`../../benchmarks/results/deploy.md`
   from `docs/guides/`), and this hook points such links at the served
   copies.
3. A line `<!-- include-table: PATH N -->` is replaced by the N-th table
   of the Markdown file PATH (relative to the page, as a link is), so
   pages quote the tables the benchmarks generate instead of copying
   numbers by hand. `<!-- methods-table -->` becomes the table of
   registered methods (`keras_dst.method_names()`).

The build imports keras_dst: set `KERAS_BACKEND` (any backend) for it.
"""

import glob
import inspect
import os
import posixpath
import re
import sys
import types

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))

# Repository files served in the site at their own relative path.
MOUNTED = (
    "CONTRIBUTING.md",
    "benchmarks/README.md",
    "benchmarks/results/*.md",
    "benchmarks/results/*.png",
    "benchmarks/results/*.json",
)

# Titles of the pages that hold `keras_dst`'s own names, by the subpackage
# that defines them (a name from a new subpackage gets a page titled after
# the subpackage).
TOP_LEVEL_GROUPS = {
    "callbacks": "Callbacks and methods",
    "convert": "Converting models",
    "export": "Saving and exporting",
    "layers": "Finding sparse layers",
    "report": "Reports and plots",
}

# The nav entries of mkdocs.yml that this hook fills (each `[]` there).
API_NAV = "API reference"
RESULTS_NAV = "Results files"

# Directives: a line of their own (`[ \t]`, not `\s`: the blank line after
# one must stay, or the next paragraph would join the table).
INCLUDE_TABLE = re.compile(
    r"^<!--[ \t]*include-table:[ \t]*(\S+)[ \t]+(\d+)[ \t]*-->[ \t]*$",
    re.MULTILINE,
)
METHODS_TABLE = re.compile(
    r"^<!--[ \t]*methods-table[ \t]*-->[ \t]*$", re.MULTILINE
)
LINK = re.compile(r"(\]\()([^)\s]+)")


def _keras_dst():
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    import keras_dst

    return keras_dst


def _summary(obj):
    """The first paragraph of `obj`'s docstring, or a value's type."""
    if not (inspect.isclass(obj) or inspect.isroutine(obj)):
        return f"a `{type(obj).__name__}`"
    doc = inspect.getdoc(obj) or ""
    first = doc.strip().split("\n\n")[0]
    return " ".join(first.split()).replace("|", "\\|")


def api_pages():
    """{page path: (title, [(qualified name, object)], intro)}, in order.

    `keras_dst`'s own names go to one page per defining subpackage, each
    public subpackage in `keras_dst.__all__` gets a page of its own.
    """
    keras_dst = _keras_dst()
    groups, modules = {}, []
    for name in keras_dst.__all__:
        obj = getattr(keras_dst, name)
        if isinstance(obj, types.ModuleType):
            modules.append((name, obj))
        elif name != "__version__":
            group = getattr(obj, "__module__", "").split(".")[1:2]
            if not group:
                raise PluginError(f"keras_dst.{name}: no defining module")
            groups.setdefault(group[0], []).append((f"keras_dst.{name}", obj))
    pages = {}
    for group in sorted(groups, key=lambda g: TOP_LEVEL_GROUPS.get(g, g)):
        title = TOP_LEVEL_GROUPS.get(group, group.replace("_", " ").title())
        intro = f"Names of `keras_dst` itself, defined in `keras_dst/{group}/`."
        pages[f"api/keras_dst/{group}.md"] = (title, groups[group], intro)
    for name, module in modules:
        if not hasattr(module, "__all__"):
            raise PluginError(f"keras_dst.{name} declares no __all__")
        members = [
            (f"keras_dst.{name}.{x}", getattr(module, x))
            for x in module.__all__
        ]
        intro = inspect.getdoc(module) or ""
        pages[f"api/{name}.md"] = (f"keras_dst.{name}", members, intro)
    return pages


def _api_markdown(title, members, intro):
    lines = [f"# {title}", "", intro, ""]
    for qualified, _ in members:
        lines += [f"::: {qualified}", ""]
    return "\n".join(lines)


def _api_index(pages):
    keras_dst = _keras_dst()
    lines = [
        "# API reference",
        "",
        "The public API is what `keras_dst` and its public subpackages "
        "list in `__all__`; every other module is implementation and may "
        "change without notice. These pages are generated from those lists "
        f"(keras_dst {keras_dst.__version__}, `keras_dst.__version__`).",
        "",
    ]
    for path, (title, members, _) in pages.items():
        page = posixpath.relpath(path, "api")
        lines += [f"## [{title}]({page})", ""]
        lines += ["| name | summary |", "| --- | --- |"]
        for qualified, obj in members:
            lines.append(f"| [`{qualified}`][{qualified}] | {_summary(obj)} |")
        lines.append("")
    return "\n".join(lines)


def _methods_table():
    keras_dst = _keras_dst()
    lines = [
        "| `--method` / `get_method` name | what | reference | reads the "
        "gradient probe |",
        "| --- | --- | --- | --- |",
    ]
    for name in keras_dst.method_names():
        method = keras_dst.get_method(name)
        probe = "yes" if method.needs_gradient else "no"
        lines.append(
            f"| `{name}` | {method.description} | {method.citation} | {probe} |"
        )
    return "\n".join(lines)


def _fill_nav(nav, key, entries):
    """Replaces the value of the nav entry titled `key`; True if found."""
    for i, item in enumerate(nav):
        if isinstance(item, dict):
            ((title, value),) = item.items()
            if title == key:
                nav[i] = {title: entries}
                return True
            if isinstance(value, list) and _fill_nav(value, key, entries):
                return True
    return False


def _mounted_paths():
    paths = []
    for pattern in MOUNTED:
        found = sorted(glob.glob(os.path.join(ROOT, pattern)))
        if not found:
            raise PluginError(f"hook: nothing matches {pattern}")
        paths += [os.path.relpath(p, ROOT).replace(os.sep, "/") for p in found]
    return paths


def on_files(files, config):
    pages = api_pages()
    files.append(
        File.generated(config, "api/index.md", content=_api_index(pages))
    )
    for path, page in pages.items():
        files.append(File.generated(config, path, content=_api_markdown(*page)))
    results = []
    for path in _mounted_paths():
        files.append(
            File.generated(config, path, abs_src_path=os.path.join(ROOT, path))
        )
        if path.startswith("benchmarks/results/") and path.endswith(".md"):
            results.append({posixpath.basename(path)[:-3]: path})
    own = [{t: p} for p, (t, _, _) in pages.items() if "/keras_dst/" in p]
    subpackages = [
        {t: p} for p, (t, _, _) in pages.items() if "/keras_dst/" not in p
    ]
    api_nav = [{"Overview": "api/index.md"}, {"keras_dst": own}, *subpackages]
    for key, entries in ((API_NAV, api_nav), (RESULTS_NAV, results)):
        if not _fill_nav(config.nav, key, entries):
            raise PluginError(f"hook: mkdocs.yml's nav has no {key!r} entry")
    return files


def _include_table(match, page):
    source, number = match.group(1), int(match.group(2))
    path = os.path.normpath(
        os.path.join(os.path.dirname(page.file.abs_src_path), source)
    )
    if not os.path.isfile(path):
        raise PluginError(f"{page.file.src_uri}: no file {source}")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    tables, current = [], []
    for line in lines + [""]:
        if line.lstrip().startswith("|"):
            current.append(line)
        else:
            if len(current) >= 2 and set(
                current[1].replace("|", "").strip()
            ) <= set("-: "):
                tables.append(current)
            current = []
    if not 1 <= number <= len(tables):
        raise PluginError(
            f"{page.file.src_uri}: {source} has {len(tables)} tables, "
            f"not a table {number}"
        )
    return "\n".join(tables[number - 1])


def _rewrite_link(match, page, config, mounted):
    """A relative link written for the repository, made one for the site.

    A target under `docs/` keeps its place below `docs/`; a mounted file
    sits at its repository path. Anything else is left for MkDocs to judge
    (a link out of the site fails the strict build).
    """
    target = match.group(2)
    if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target):
        return match.group(0)
    path, _, anchor = target.partition("#")
    page_dir = os.path.dirname(page.file.abs_src_path)
    real = os.path.normpath(os.path.join(page_dir, path))
    docs_dir = os.path.abspath(config.docs_dir)
    if real.startswith(docs_dir + os.sep):
        site_path = os.path.relpath(real, docs_dir).replace(os.sep, "/")
    else:
        site_path = os.path.relpath(real, ROOT).replace(os.sep, "/")
        if site_path not in mounted:
            return match.group(0)
    page_site_dir = posixpath.dirname(page.file.src_uri) or "."
    new = posixpath.relpath(site_path, page_site_dir)
    return match.group(1) + new + (f"#{anchor}" if anchor else "")


def on_page_markdown(markdown, page, config, files):
    markdown = INCLUDE_TABLE.sub(lambda m: _include_table(m, page), markdown)
    markdown = METHODS_TABLE.sub(lambda m: _methods_table(), markdown)
    if page.file.abs_src_path:  # a file of the repository, not generated
        mounted = set(_mounted_paths())
        markdown = LINK.sub(
            lambda m: _rewrite_link(m, page, config, mounted), markdown
        )
    return markdown
