"""Sphinx configuration of the sklearn_cosmoe documentation.

Build (from the repository root; warnings are errors)::

    python -m sphinx -W --keep-going -b html doc doc/_build/html

The gallery (``doc/examples``) is executed during the build; set
``SPHINX_GALLERY_PLOT=0`` in the environment to skip running it.
"""

import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the package, when it is not installed

import sklearn_cosmoe  # noqa: E402

project = "sklearn-cosmoe"
author = "sklearn_cosmoe developers"
copyright = "sklearn_cosmoe developers, BSD-3-Clause"
version = release = sklearn_cosmoe.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md", "examples", "gen_modules/backreferences"]
templates_path = ["_templates"]

# -- MathJax: macros used across the user guide ------------------------------
mathjax3_config = {
    "tex": {
        "macros": {
            "softmax": r"\operatorname{softmax}",
            "R": r"\mathbb{R}",
        }
    }
}

# -- Markdown (the results page of the convergence experiment) ---------------
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# -- autodoc / autosummary / numpydoc -----------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": True}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# scikit-learn's metadata-routing methods (``set_fit_request``, ...) are
# generated on every estimator; their docstrings point into scikit-learn's own
# documentation, which is not part of this build.
_SKIPPED_MEMBERS = re.compile(r"^(set_\w+_request|get_metadata_routing)$")


def _skip_member(app, what, name, obj, skip, options):
    if _SKIPPED_MEMBERS.match(name):
        return True
    return None


# In a numpydoc type such as ``ndarray of shape (n_experts, n_features_in_)``
# a name that ends with "_" would be read as a reST link target: escape it.
_SHAPE = re.compile(r"of shape \(([^()]*)\)")
_TRAILING_UNDERSCORE = re.compile(r"(?<![\\`])\b(\w+)_(?=\s*[,)])")


def _escape_shapes(app, what, name, obj, options, lines):
    for i, line in enumerate(lines):
        lines[i] = _SHAPE.sub(
            lambda m: "of shape (" + _TRAILING_UNDERSCORE.sub(r"\1\\_", m.group(1) + ")"),
            line,
        )


# The convergence-rate results page (rates.md) is written by the experiment's
# owner.  Until it exists, leave it out of the toctree and turn the links to it
# into plain text, so that the rest of the site still builds with -W.
_RATES_PAGE = (HERE / "rates.md").exists()
_RATES_TOCTREE_ENTRY = re.compile(r"^   (?:[^\n<]*<)?rates>?\n", re.M)
_RATES_LINK_WITH_TEXT = re.compile(r":doc:`([^`<]+?)\s*</?rates>`")
_RATES_LINK = re.compile(r":doc:`/?rates`")


def _drop_rates_links(app, docname, source):
    if _RATES_PAGE:
        return
    text = _RATES_TOCTREE_ENTRY.sub("", source[0])
    text = _RATES_LINK_WITH_TEXT.sub(r"\1 (not built yet)", text)
    source[0] = _RATES_LINK.sub("the results page (not built yet)", text)


def setup(app):
    app.connect("autodoc-skip-member", _skip_member)
    app.connect("autodoc-process-docstring", _escape_shapes)
    app.connect("source-read", _drop_rates_links)


# -- sphinx-gallery ------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "doc_module": ("sklearn_cosmoe",),
    "backreferences_dir": "gen_modules/backreferences",
    "plot_gallery": os.environ.get("SPHINX_GALLERY_PLOT", "True"),
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "min_reported_time": 1,
    "matplotlib_animations": False,
    # show only what the examples print, not the value of a block's last line
    "capture_repr": (),
}

# -- HTML ----------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sklearn-cosmoe {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False
html_theme_options = {
    "navbar_align": "left",
    "show_prev_next": True,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    "navigation_with_keys": False,
}
html_sidebars = {"index": [], "rates": []}
html_context = {"default_mode": "light"}
