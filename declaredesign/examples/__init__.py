"""Ready-made designs, the forum's multilevel design first.

Each example is a *designer*: a function of the design's parameters returning a
:class:`~declaredesign.design.Design`, so it works with ``expand_design`` and the CLI's
``--param``.
"""

from .multilevel import multilevel, multilevel_varying

#: Name -> designer, as listed by ``declaredesign examples``.
EXAMPLES = {
    "multilevel": multilevel,
    "multilevel_varying": multilevel_varying,
}

__all__ = ["EXAMPLES", "multilevel", "multilevel_varying"]
