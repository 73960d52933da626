"""Fixed-effects formulas parsed and materialised the way R's ``model.frame`` does.

:func:`model_frame` turns ``"y ~ x + group + x:z"`` and a mapping of columns into the
outcome vector and design matrix that ``lm``/``lm_robust`` would build in R:

* column names as R prints them: ``(Intercept)``, ``x``, factor levels pasted to the
  variable name with treatment contrasts (``groupb``), logical variables as ``bTRUE``,
  interactions joined by ``:``;
* terms ordered by degree (main effects, then two-way interactions, ...) as R orders them;
* incomplete rows dropped: a row with a missing value in any variable the formula uses
  (or in any of ``extra_columns`` such as clusters or weights) is left out, and factor
  levels are taken from the remaining rows only (R's ``na.omit`` then ``model.matrix``).

* R's formula language: ``poly(x, 2)`` (orthogonal, R's values and signs; columns
  ``poly(x, 2)1``...), ``factor(z)``/``as.factor(z)`` (``factor(z)1``), ``I(x^2)`` (``^``
  is power), ``log``, ``exp``, ``sqrt``, ``abs``, ``scale`` (sd with n - 1), ``center``;
  Python spellings (``np.log(x)``, ``C(z)``, ``I(x ** 2)``) are read too and named as R
  would name the same term;
* a pandas Categorical keeps its category order (R's level order: the first category is
  the baseline); a factor with a single level in the rows used is refused with R's
  message ("contrasts can be applied only to factors with 2 or more levels").

Parsing and materialisation are delegated to formulaic (R spellings are translated in
:func:`declaredesign.formula.to_formulaic`, terms named back by
:func:`declaredesign.formula.r_label`); this module adds the R naming, the NA handling and
error messages that name the formula. It is shared by every
estimator (``lm_robust``, ``difference_in_means``, the mixed models' fixed part).
"""

from __future__ import annotations

import ast
import functools
import operator
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import formulaic
import numpy as np
import pandas as pd
from formulaic.errors import FormulaicError
from formulaic.parser.types import Factor

from ..errors import FormulaError
from ..expressions import check_formula
from ..formula import R_FUNCTIONS, formulaic_formula, r_label, to_formulaic, variables
from ..groups import group_codes

__all__ = ["ModelFrame", "model_frame", "formula_variables"]

_LEVEL = re.compile(r"^(?P<var>.+?)\[(?:T\.)?(?P<level>.*)\]$", re.S)


@dataclass(frozen=True)
class ModelFrame:
    """Outcome(s), design matrix and the rows used, for one formula on one dataset.

    Attributes
    ----------
    formula : str
        The formula as given.
    outcome : list of str
        Outcome name(s) as R deparses the left-hand side (``"y"``).
    y : ndarray, shape (n_used,) or (n_used, n_outcomes)
        Outcome values of the rows kept (1-D when there is one outcome).
    X : ndarray of float, shape (n_used, k)
        Design matrix of the rows kept.
    columns : list of str
        Names of the columns of ``X`` as R prints them.
    mask : ndarray of bool, shape (n_rows,)
        Which input rows were kept (complete in every used column).
    has_intercept : bool
        Whether the design has an intercept column.
    variables : list of str
        Data columns the formula reads.
    term_columns : dict
        For each term label (R spelling) the names of its columns in ``X``.
    finite : bool
        True when ``y`` and ``X`` are known to hold only finite values (plain numeric
        columns whose sums are finite); False means not checked.
    """

    formula: str
    outcome: list[str]
    y: np.ndarray
    X: np.ndarray
    columns: list[str]
    mask: np.ndarray
    has_intercept: bool
    variables: list[str]
    term_columns: dict[str, list[str]] = field(default_factory=dict)
    finite: bool = False

    @property
    def n(self) -> int:
        """Number of rows kept."""
        return int(self.X.shape[0])


def formula_variables(formula: str) -> tuple[list[str], list[str]]:
    """Return the data variables read by the left- and right-hand sides of ``formula``.

    Names of functions (``np.log``, ``I``) are not included (see
    :func:`declaredesign.formula.variables`).

    Examples
    --------
    >>> formula_variables("y ~ x + np.log(z)")
    (['y'], ['x', 'z'])
    """
    return variables(formula)


def _is_missing(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind == "c":
        return np.isnan(values.real) | np.isnan(values.imag)
    if values.dtype.kind in "O":
        return np.asarray(pd.isna(values), dtype=bool)
    if values.dtype.kind in "mM":
        return np.isnat(values)
    return np.zeros(values.shape[0], dtype=bool)


def _has_missing(values: np.ndarray) -> bool:
    """Whether :func:`_is_missing` flags any value, without a mask in the usual case.

    Integer and boolean columns have no missing values; a float column whose sum is finite
    has neither NaN nor infinity (one reduction instead of a mask and a pass over it).
    """
    values = np.asarray(values)
    kind = values.dtype.kind
    if kind not in "fcOmM":
        return False
    if kind in "fc" and _finite_sum(values):
        return False
    return bool(_is_missing(values).any())


def _finite_sum(values: np.ndarray) -> bool:
    """Return whether a float column's sum is finite: then no value is NaN or infinite.

    False for other dtypes, for empty columns and when the sum overflows; callers then
    run their exact checks.
    """
    if values.dtype.kind not in "fc" or not values.size:
        return False
    with np.errstate(all="ignore"):
        return bool(np.isfinite(values.sum()))


def _split_interaction(col: str) -> list[str]:
    """Split a formulaic column name at the ``:`` joining the factors of an interaction."""
    parts, depth, cur = [], 0, []
    for ch in col:
        depth += (ch in "([") - (ch in ")]")
        if ch == ":" and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _r_name(col: str, labels: Mapping[str, str], bools: set[str]) -> str:
    """Rename a formulaic column as R names it.

    ``labels`` maps each formulaic factor (``C(Z)``, ``I(x ** 2)``) to R's spelling
    (``factor(Z)``, ``I(x^2)``); a level or matrix column is pasted to it (``factor(Z)1``,
    ``poly(x, 2)1``), logical levels as ``TRUE``/``FALSE`` (``bools``: factors of logicals).
    """
    if col == "Intercept":
        return "(Intercept)"
    parts = []
    for part in _split_interaction(col):
        if part in labels:
            parts.append(labels[part])
            continue
        m = _LEVEL.match(part)
        if m and m.group("var") in labels:
            level = m.group("level")
            if m.group("var") in bools and level in ("True", "False"):
                level = level.upper()
            parts.append(f"{labels[m.group('var')]}{level}")
        else:
            parts.append(part)
    return ":".join(parts)


def _categories(values: Any) -> pd.Index | None:
    """Return the categories of a pandas Categorical (or categorical Series), else None."""
    if isinstance(values, pd.Categorical):
        return values.categories
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.categories
    return None


@dataclass(frozen=True)
class _Poly:
    """An orthogonal ``poly(variable, degree)`` factor on a numeric column."""

    variable: str
    degree: int
    label: str          # R's spelling, ``poly(X, 4)``


def _poly_factor(fac: Any, arrays: Mapping[str, np.ndarray]) -> _Poly | None:
    """Return ``poly(x, d)`` (a numeric column, a literal degree, no keywords), else None."""
    if fac.eval_method != Factor.EvalMethod.PYTHON:
        return None
    try:
        node = ast.parse(str(fac), mode="eval").body
    except SyntaxError:
        return None
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "poly" and not node.keywords and len(node.args) == 2):
        return None
    x, d = node.args
    if not (isinstance(x, ast.Name) and isinstance(d, ast.Constant) and type(d.value) is int
            and d.value >= 1 and x.id in arrays and arrays[x.id].dtype.kind in "iuf"):
        return None
    return _Poly(x.id, d.value, r_label(str(fac)))


def _fast_factor(fac: Any, arrays: Mapping[str, np.ndarray]) -> str | _Poly | None:
    """Return a numeric column's name or an orthogonal ``poly`` of one, else None."""
    if fac.eval_method == Factor.EvalMethod.LOOKUP:
        name = str(fac)
        return name if name in arrays and arrays[name].dtype.kind in "iuf" else None
    return _poly_factor(fac, arrays)


def _fast_term(term: Any, arrays: Mapping[str, np.ndarray]
               ) -> tuple[str | _Poly, ...] | None:
    """Return the factors of a right-hand-side term the fast path builds, else None."""
    facs = tuple(_fast_factor(fac, arrays) for fac in term.factors)
    if not facs or None in facs or len(set(facs)) != len(facs):
        return None
    names = tuple(f for f in facs if isinstance(f, str))
    if len(facs) - len(names) > 1:
        return None          # two matrix factors: formulaic's column order, not ours
    # poly columns have unit length, so |value| <= 1: bound the plain factors as if
    # the poly factor were one more of them
    if len(facs) > 1 and not _bounded(arrays, names, len(facs)):
        return None
    return facs


def _fast_path(f, arrays: Mapping[str, np.ndarray]
               ) -> tuple[list[tuple[str | _Poly, ...]], int] | None:
    """Numeric columns, ``poly()`` of them and their interactions: skip formulaic.

    Returns the right-hand-side terms (formula order), each its factors (column names,
    or :class:`_Poly` for an orthogonal ``poly(x, d)``), and whether there is an
    intercept, or None when the general path is needed.
    """
    lhs = list(f.lhs)
    if len(lhs) != 1 or len(lhs[0].factors) != 1:
        return None
    fy = lhs[0].factors[0]
    if fy.eval_method != Factor.EvalMethod.LOOKUP or str(fy) not in arrays or \
            arrays[str(fy)].dtype.kind not in "iuf":
        return None
    terms: list[tuple[str | _Poly, ...]] = []
    intercept = 0
    for term in f.rhs:
        facs = term.factors
        if len(facs) == 1 and facs[0].eval_method == Factor.EvalMethod.LITERAL and \
                str(facs[0]) == "1":
            intercept = 1
            continue
        names = _fast_term(term, arrays)
        if names is None:
            return None
        terms.append(names)
    return terms, intercept


def _bounded(arrays: Mapping[str, np.ndarray], names: tuple[str, ...],
             n_factors: int | None = None) -> bool:
    """Whether the product of these columns stays finite (no inf, no inf * 0 = NaN).

    Otherwise the general path, which drops rows whose design row is not a number.
    ``n_factors`` counts the factors of the product (default: the columns).
    """
    limit = 10.0 ** (300.0 / (n_factors or len(names)))
    with np.errstate(invalid="ignore"):
        return all(arrays[v].size == 0 or float(np.abs(arrays[v]).max()) < limit
                   for v in names)


def _fast_frame(formula: str, fast: tuple[list[tuple[str | _Poly, ...]], int],
                arrays: Mapping[str, np.ndarray], mask: np.ndarray, outcome: str,
                used: list[str], finite: bool, groups: np.ndarray | None = None
                ) -> ModelFrame | None:
    """Build the model frame of numeric columns and ``poly()`` directly (no formulaic).

    An interaction's column is the product of its factors in the term's order, named
    ``a:b``, as formulaic computes and names it; a ``poly(x, d)`` factor gives ``d``
    columns named ``poly(x, d)1``... (with ``groups``, computed within each group, as
    the general path's context does). ``finite`` says every used column is known finite,
    so ``y`` and ``X`` are (``_bounded`` keeps the products finite). None when a
    ``poly`` cannot be computed as the general path would (a group with no more rows
    than the degree, or values that are not finite): the general path then decides.
    """
    terms, intercept = fast
    all_rows = bool(mask.all())
    row_groups = None if groups is None else (np.asarray(groups) if all_rows
                                              else np.asarray(groups)[mask])
    n_used = len(mask) if all_rows else int(np.count_nonzero(mask))
    widths = [_term_width(t) for t in terms]
    X = np.empty((n_used, sum(widths) + intercept), order="F")
    # a poly term on its own is computed straight into its columns of X
    starts = np.cumsum([intercept, *widths])
    into = {t[0]: X[:, j:j + w].T for t, j, w in zip(terms, starts, widths)
            if len(t) == 1 and isinstance(t[0], _Poly)}
    polys = _poly_columns(terms, arrays, mask, all_rows, row_groups, into)
    if polys is None:
        return None
    columns = ["(Intercept)"] if intercept else []
    term_columns = {"(Intercept)": ["(Intercept)"]} if intercept else {}
    if intercept:
        X[:, 0] = 1.0
    j = intercept
    for names, width in zip(terms, widths):
        if width == 1 and all(isinstance(v, str) for v in names):
            cols = [arrays[v] if all_rows else arrays[v][mask] for v in names]
            X[:, j] = functools.reduce(operator.mul, cols)
            columns.append(":".join(names))
            term_columns[columns[-1]] = [columns[-1]]
            j += 1
            continue
        term_columns[":".join(v if isinstance(v, str) else v.label for v in names)] = \
            _poly_term(X, j, names, arrays, mask, all_rows, polys, columns)
        j += width
    yv = arrays[outcome]
    y = np.asarray(yv if all_rows else yv[mask], dtype=float)
    return ModelFrame(formula=formula, outcome=[outcome], y=y, X=X, columns=columns,
                      mask=mask, has_intercept=bool(intercept), variables=used,
                      term_columns=term_columns, finite=finite)


def _term_width(names: tuple[str | _Poly, ...]) -> int:
    """Return a fast term's number of columns (its ``poly`` factor's degree, else 1)."""
    return next((v.degree for v in names if isinstance(v, _Poly)), 1)


def _poly_columns(terms: list[tuple[str | _Poly, ...]], arrays: Mapping[str, np.ndarray],
                  mask: np.ndarray, all_rows: bool, row_groups: np.ndarray | None,
                  into: Mapping[_Poly, np.ndarray]) -> dict[_Poly, list[np.ndarray]] | None:
    """Columns of every ``poly`` factor on the rows kept, as the general path computes them.

    ``into`` gives, for some factors, a ``(degree, n)`` array (rows contiguous) that
    :func:`grouped_r_poly` may write them into. None when a group (the whole data
    without ``row_groups``) has no more rows than the degree or a column is not finite.
    """
    polys = dict.fromkeys(v for t in terms for v in t if isinstance(v, _Poly))
    if not polys:
        return {}
    codes = None if row_groups is None else _row_codes(row_groups)
    n = int(np.count_nonzero(mask))
    smallest = n if codes is None else (int(np.bincount(codes).min()) if n else 0)
    out: dict[_Poly, list[np.ndarray]] = {}
    for p in polys:
        if smallest <= p.degree:
            return None
        x = arrays[p.variable] if all_rows else arrays[p.variable][mask]
        with np.errstate(invalid="ignore", divide="ignore"):   # the general path warns
            values = r_poly(x, p.degree) if codes is None else \
                grouped_r_poly(x, codes, p.degree, out=into.get(p))
        cols = [values[str(d)] for d in range(1, p.degree + 1)]
        if not all(_finite_sum(c) for c in cols):
            return None
        out[p] = cols
    return out


def _poly_term(X: np.ndarray, j: int, names: tuple[str | _Poly, ...],
               arrays: Mapping[str, np.ndarray], mask: np.ndarray, all_rows: bool,
               polys: dict[_Poly, list[np.ndarray]], columns: list[str]) -> list[str]:
    """Fill ``X[:, j:]`` with a term holding a ``poly`` factor; append and return its names.

    Each column is the product of the factors in the term's order (the poly factor's
    ``d``-th column in its place), as formulaic multiplies them.
    """
    poly = next(v for v in names if isinstance(v, _Poly))
    plain = {v: (arrays[v] if all_rows else arrays[v][mask])
             for v in names if isinstance(v, str)}
    added = []
    for d in range(poly.degree):
        cols = [polys[v][d] if isinstance(v, _Poly) else plain[v] for v in names]
        if len(cols) == 1:
            if not np.shares_memory(cols[0], X[:, j + d]):   # not computed in place
                X[:, j + d] = cols[0]
        else:
            np.multiply(functools.reduce(operator.mul, cols[:-1]), cols[-1], out=X[:, j + d])
        added.append(":".join(f"{v.label}{d + 1}" if isinstance(v, _Poly) else v
                              for v in names))
    columns.extend(added)
    return added


# ------------------------------------------------ transforms computed per simulation
def r_poly(x: np.ndarray, degree: int = 1, raw: bool = False) -> dict[str, np.ndarray]:
    """R's ``poly(x, degree)``: orthogonal polynomials (or raw powers), columns "1", "2"...

    The orthogonal basis is the QR basis of the centred powers, each column scaled by
    its diagonal entry of R and then to unit length, which fixes the signs as R does.
    """
    x = np.asarray(x, dtype=float)
    if raw:
        return {str(d): x ** d for d in range(1, degree + 1)}
    xc = x - x.mean()
    V = np.vander(xc, degree + 1, increasing=True)
    q, r = np.linalg.qr(V)
    Z = q * np.diag(r)
    Z = Z / np.sqrt(np.sum(Z ** 2, axis=0))
    return {str(d): Z[:, d] for d in range(1, degree + 1)}


def grouped_r_poly(x: np.ndarray, codes: np.ndarray, degree: int = 1,
                   raw: bool = False, out: np.ndarray | None = None
                   ) -> dict[str, np.ndarray]:
    """:func:`r_poly` within each group of ``codes`` (0..k-1), all groups at once.

    Groups of the same size are stacked into one 3-d array and go through one stacked
    QR: the same arithmetic, operation by operation, as :func:`r_poly` on each group,
    so each group's values are those its own fit computes (no loop over simulations).
    With ``out`` (a ``(degree, n)`` array whose rows are contiguous), groups of one size
    in order are written there and the columns returned are its rows.
    """
    x = np.asarray(x, dtype=float)
    if raw:
        return {str(d): x ** d for d in range(1, degree + 1)}
    counts = np.bincount(codes)
    in_order = codes.size < 2 or bool((codes[1:] >= codes[:-1]).all())
    if in_order and counts.size and counts[0] > degree and (counts == counts[0]).all():
        # groups of one size, one after another: the rows are a (groups, size) view
        values = _blocked_orthogonal_poly(
            x.reshape(counts.size, counts[0]), degree,
            None if out is None else out.reshape(degree, counts.size, counts[0]))
        return {str(d): values[d - 1].reshape(-1) for d in range(1, degree + 1)}
    out = {str(d): np.empty_like(x) for d in range(1, degree + 1)}
    order = np.arange(codes.size) if in_order else np.argsort(codes, kind="stable")
    starts = np.concatenate(([0], np.cumsum(counts)))
    for size in np.unique(counts):
        groups = np.flatnonzero(counts == size)
        if size <= degree:   # no QR basis of full width: r_poly's own outcome per group
            for g in groups:
                rows = order[starts[g]:starts[g + 1]]
                for key, values in r_poly(x[rows], degree, raw).items():
                    out[key][rows] = values
            continue
        rows = order[starts[groups][:, None] + np.arange(size)]   # (groups, size)
        for key, values in zip(out, _stacked_orthogonal_poly(x[rows], degree)):
            out[key][rows] = values
    return out


#: Rows of the groups that go through one stacked QR together (they stay in cache).
POLY_BLOCK_ROWS = 1 << 15


def _blocked_orthogonal_poly(xs: np.ndarray, degree: int, out: np.ndarray | None = None
                             ) -> np.ndarray:
    """:func:`_stacked_orthogonal_poly` by blocks of groups: a ``(degree, groups, size)`` array.

    Each group's values are its own QR's (the same for any block), computed a block of
    about :data:`POLY_BLOCK_ROWS` rows at a time so that the block stays in cache;
    written into ``out`` when given.
    """
    G, size = xs.shape
    if out is None:
        out = np.empty((degree, G, size))
    step = max(1, POLY_BLOCK_ROWS // max(size, 1))
    for g in range(0, G, step):
        for d, v in enumerate(_stacked_orthogonal_poly(xs[g:g + step], degree)):
            out[d, g:g + step] = v
    return out


def _stacked_orthogonal_poly(xs: np.ndarray, degree: int) -> list[np.ndarray]:
    """Orthogonal polynomial columns 1..degree of each row of ``xs`` (as :func:`r_poly`)."""
    xc = xs - xs.mean(axis=1, keepdims=True)
    # powers by successive products, as np.vander does; built column by column (each
    # column contiguous) and handed to the QR as the (rows, columns) view
    V = np.empty((xc.shape[0], degree + 1, xc.shape[1]))
    V[:, 0] = 1.0
    V[:, 1] = xc
    for d in range(2, degree + 1):
        np.multiply(V[:, d - 1], xc, out=V[:, d])
    q, r = np.linalg.qr(V.transpose(0, 2, 1))
    Z = q * np.diagonal(r, axis1=-2, axis2=-1)[:, None, :]
    Z = Z / np.sqrt(np.sum(Z ** 2, axis=-2, keepdims=True))
    return [Z[..., d] for d in range(1, degree + 1)]


def _row_codes(groups: np.ndarray) -> np.ndarray:
    """Dense codes (0..k-1, in sorted order of the groups) of each row's group."""
    groups = np.asarray(groups)
    if groups.ndim == 1 and groups.size and groups.dtype.kind in "iu" and groups.min() >= 0:
        # simulation numbers: the shared coding (runs when rows come in simulation order,
        # no sort), the codes np.unique gives
        return group_codes(groups)[0]
    return np.unique(groups, return_inverse=True)[1].reshape(-1)


def _grouped_transforms(groups: np.ndarray) -> dict[str, Any]:
    """``poly``, ``scale`` and ``center`` computed within each group (simulation).

    A batched kernel's frame stacks many simulations; these transforms depend on the
    data, so each simulation's rows get the values its own fit would.
    """
    codes = _row_codes(groups)
    counts = np.bincount(codes).astype(float)

    def center(x):
        x = np.asarray(x, dtype=float)
        return x - (np.bincount(codes, weights=x, minlength=len(counts)) / counts)[codes]

    def scale(x, center=True, scale=True, ddof=1):  # noqa: FBT002 - R's and formulaic's
        xc = center_(x) if center else np.asarray(x, dtype=float)
        if not scale:
            return xc
        with np.errstate(divide="ignore", invalid="ignore"):
            ss = np.bincount(codes, weights=xc ** 2, minlength=len(counts))
            return xc / np.sqrt(ss / (counts - ddof))[codes]

    def poly(x, degree=1, raw=False):
        return grouped_r_poly(x, codes, degree, raw)

    center_ = center
    return {"center": center, "scale": scale, "poly": poly}


def _data_frame(used: list[str], arrays: Mapping[str, np.ndarray],
                data_columns: Mapping[str, Any], mask: np.ndarray
                ) -> tuple[dict[str, str], pd.DataFrame]:
    """Return the used columns on the kept rows, strings and logicals as categoricals.

    A pandas Categorical keeps its category order (R's factor level order, so its first
    category is the baseline); strings are sorted. Levels absent from the kept rows are
    dropped, as R's ``model.frame`` drops unused levels.
    """
    factor_vars: dict[str, str] = {}
    frame = {}
    for v in used:
        a = arrays[v][mask]
        cats = _categories(data_columns[v])
        if cats is not None:
            factor_vars[v] = "factor"
            a = pd.Categorical(a, categories=cats).remove_unused_categories()
        elif a.dtype.kind == "b":
            factor_vars[v] = "bool"
            a = pd.Categorical(a, categories=[False, True])
        elif a.dtype.kind in "OUS":
            factor_vars[v] = "factor"
            a = pd.Categorical(a.astype(str) if a.dtype.kind != "O" else a)
            a = a.remove_unused_categories()
        frame[v] = a
    if not used:
        return factor_vars, pd.DataFrame(index=np.arange(int(mask.sum())))
    return factor_vars, pd.DataFrame(frame, index=np.arange(int(mask.sum())))


def _factor_variable(fac: Any) -> str | None:
    """Return the column a categorical factor reads (``g`` or ``C(g)``), else None."""
    text = str(fac)
    if fac.eval_method == Factor.EvalMethod.LOOKUP:
        return text
    m = re.fullmatch(r"C\(\s*([A-Za-z_.][A-Za-z0-9_.]*)\s*\)", text)
    return m.group(1) if m else None


def _check_levels(f: Any, df: pd.DataFrame, factor_vars: Mapping[str, str], formula: str,
                  func: str, refuse: bool = True) -> None:
    """Refuse a factor with a single level in the rows used, with R's message.

    With ``refuse=False`` (a batch's stacked frame) the factor is given an empty second
    level instead: its column is all zeros, so the kernel finds the simulations rank
    deficient and leaves them to the per-simulation fit, which raises R's error.
    """
    for term in f.rhs:
        for fac in term.factors:
            v = _factor_variable(fac)
            if v is None or v not in df.columns:
                continue
            if str(fac) == v and factor_vars.get(v) != "factor":
                continue  # a numeric or logical column used as it is
            values = df[v].cat.categories if isinstance(df[v].dtype, pd.CategoricalDtype) \
                else pd.unique(df[v].dropna())
            if len(values) == 1 and not refuse and str(fac) == v:
                df[v] = df[v].cat.add_categories([f"{values[0]}\u2060"])
            elif len(values) < 2 and refuse:
                raise FormulaError(
                    f"{func}(formula={formula!r}): contrasts can be applied only to factors "
                    f"with 2 or more levels; {r_label(str(fac))} has "
                    f"{'no level' if len(values) == 0 else f'the one level {str(values[0])!r}'} "
                    "in the rows used.")


def _labels(f: Any, factor_vars: Mapping[str, str], as_factor: frozenset[str]
            ) -> tuple[dict[str, str], set[str]]:
    """R's spelling of every factor of the formula, and the factors of logical columns."""
    labels: dict[str, str] = {}
    bools: set[str] = set()
    for side in (f.lhs, f.rhs):
        for term in side:
            for fac in term.factors:
                text = str(fac)
                labels[text] = r_label(text, as_factor)
                if factor_vars.get(_factor_variable(fac) or "") == "bool":
                    bools.add(text)
    return labels, bools


def model_frame(formula: str, data_columns: Mapping[str, Any], *,
                extra_columns: Iterable[str] = (), func: str = "model_frame",
                check_levels: bool = True, groups: np.ndarray | None = None) -> ModelFrame:
    """Materialise ``formula`` on ``data_columns`` as R's ``model.frame`` + ``model.matrix``.

    Parameters
    ----------
    formula : str
        A fixed-effects formula such as ``"y ~ x + group + x:z"``. ``0 +`` or ``- 1``
        removes the intercept; ``I(...)`` and ``np.*`` transforms are evaluated by formulaic.
    data_columns : mapping of str to array_like
        The data (a DataFrame, a dict of arrays or a batch's ``columns``).
    extra_columns : iterable of str, optional
        Further columns whose missing values also drop the row (clusters, weights...).
    func : str, optional
        Name of the public function, used in error messages.
    check_levels : bool, optional
        Refuse a factor with a single level in the rows used, as R does (default). A
        batched kernel's frame over all simulations passes False: such a factor then
        gives an all-zero column, so the simulations go to the per-simulation fit.
    groups : ndarray, optional
        The simulation of each row when the data stack several simulations (a batched
        kernel's frame): ``poly``, ``scale`` and ``center`` are then computed within each
        simulation, as its own fit computes them.

    Returns
    -------
    ModelFrame

    Raises
    ------
    FormulaError
        If the formula does not parse or names a column that ``data_columns`` lacks.

    Examples
    --------
    >>> import numpy as np
    >>> mf = model_frame("y ~ x + g", {"y": np.array([1.0, 2.0, 3.0, np.nan]),
    ...                                "x": np.array([0.5, 1.0, 2.0, 3.0]),
    ...                                "g": np.array(["a", "b", "a", "b"], dtype=object)})
    >>> mf.columns, mf.mask.tolist()
    (['(Intercept)', 'x', 'gb'], [True, True, True, False])
    """
    f = formulaic_formula(formula)   # its shape first ('y ~' has no right-hand side)
    check_formula(formula, func)     # then its terms: formulaic evaluates them with eval
    lhs_vars, rhs_vars = variables(formula)
    extra = [c for c in extra_columns if c is not None]
    available = set(map(str, data_columns.keys()))
    missing = [v for v in [*lhs_vars, *rhs_vars, *extra] if v not in available]
    if missing:
        raise FormulaError(
            f"{func}(formula={formula!r}): column(s) {', '.join(map(repr, missing))} named in "
            f"the formula are not in the data; available columns are: "
            f"{', '.join(sorted(available))}."
        )
    used = list(dict.fromkeys([*lhs_vars, *rhs_vars]))
    arrays = {v: np.asarray(data_columns[v]) for v in used}
    n_rows = len(next(iter(arrays.values()))) if arrays else len(
        np.asarray(next(iter(data_columns.values()))))
    mask = np.ones(n_rows, dtype=bool)
    finite = True    # every used column integer, or float with a finite sum
    for v in [*used, *extra]:
        values = np.asarray(data_columns[v])
        clean = values.dtype.kind in "iub" or _finite_sum(values)   # no NA, no infinity
        if not clean and _has_missing(values):
            mask &= ~_is_missing(values)
        finite = finite and (clean or v not in arrays)

    fast = _fast_path(f, arrays)
    if fast is not None:
        mf = _fast_frame(formula, fast, arrays, mask, lhs_vars[0], used, finite, groups)
        if mf is not None:
            return mf

    factor_vars, df = _data_frame(used, arrays, data_columns, mask)

    row_groups = None if groups is None else np.asarray(groups)[mask]

    def materialise(d: pd.DataFrame):
        # R's poly (columns named 1, 2... raw or not); per simulation in a stacked frame
        context = {**R_FUNCTIONS, "poly": r_poly}
        if row_groups is not None:
            context.update(_grouped_transforms(row_groups))
        try:
            return formulaic.model_matrix(f, d, na_action="ignore", context=context)
        except FormulaicError as e:
            raise FormulaError(f"{func}(formula={formula!r}): could not build the model "
                               f"matrix: {e}") from e

    _check_levels(f, df, factor_vars, formula, func, refuse=check_levels)
    mm = materialise(df)
    lhs = mm.lhs.to_numpy(dtype=float) if len(mm.lhs.columns) else np.zeros((len(df), 0))
    rhs = mm.rhs
    X = rhs.to_numpy(dtype=float)
    # Transforms (log of a negative number...) can create NaN; R's na.omit drops those rows.
    bad = np.isnan(lhs).any(axis=1) | np.isnan(X).any(axis=1)
    if bad.any():
        keep_idx = np.flatnonzero(mask)
        mask = mask.copy()
        mask[keep_idx[bad]] = False
        df = df.loc[~bad].reset_index(drop=True)
        row_groups = None if row_groups is None else row_groups[~bad]
        for v, kind in factor_vars.items():
            if kind == "factor":
                df[v] = df[v].cat.remove_unused_categories()
        mm = materialise(df)
        lhs = mm.lhs.to_numpy(dtype=float)
        rhs = mm.rhs
        X = rhs.to_numpy(dtype=float)

    labels, bools = _labels(f, factor_vars, to_formulaic(formula)[1])
    columns = [_r_name(c, labels, bools) for c in rhs.columns]
    term_columns: dict[str, list[str]] = {}
    for ts in rhs.model_spec.structure:
        label = "(Intercept)" if str(ts.term) == "1" else \
            ":".join(labels.get(str(fac), str(fac)) for fac in ts.term.factors)
        term_columns[label] = [_r_name(c, labels, bools) for c in ts.columns]
    outcome = [labels.get(str(t), str(t)) for t in f.lhs] if len(mm.lhs.columns) else []
    y = lhs[:, 0] if lhs.shape[1] == 1 else lhs
    return ModelFrame(formula=formula, outcome=outcome, y=y, X=np.ascontiguousarray(X),
                      columns=columns, mask=mask,
                      has_intercept="(Intercept)" in columns,
                      variables=used, term_columns=term_columns)
