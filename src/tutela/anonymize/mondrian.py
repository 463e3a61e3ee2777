"""Mondrian multidimensional k-anonymity with hierarchy-aware categorical splits.

LeFevre, DeWitt, Ramakrishnan, "Mondrian Multidimensional K-Anonymity" (ICDE 2006):
partition the records recursively as long as every part stays *allowable* (at least k
records and, when asked, l-diverse and t-close). Each partition tries a split on every
quasi-identifier and takes the one that regains the most information (normalised
certainty penalty) in that attribute:

* numeric attributes split at the median;
* categorical attributes with a generalisation hierarchy split along it: children of the
  current lowest common ancestor that are allowable become parts, the rest are pooled
  (kept under the ancestor), suppressed when fewer than k records, within the suppression
  budget and cheaper than pooling, or merged into the smallest part;
* categorical attributes without a hierarchy use set-valued generalisation: the values
  present are split into two groups of balanced size.

Released values are tight: numeric ranges are the partition's min-max, hierarchical values
the lowest common ancestor of what is present, set-valued ones the set present. Everything
per partition is a handful of numpy reductions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt
import pandas as pd

from tutela.anonymize.hierarchy import CompiledHierarchy, Hierarchy
from tutela.errors import AnonymizationError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class LDiversity(StrEnum):
    """Which l-diversity definition to enforce."""

    DISTINCT = "distinct"
    ENTROPY = "entropy"
    RECURSIVE = "recursive"


@dataclass(frozen=True)
class PrivacyModel:
    """The privacy requirements every released equivalence class must meet.

    Attributes:
        k: minimum class size.
        l: diversity of the sensitive attribute in every class (``None``: not required).
        l_kind: distinct, entropy or recursive (c, l).
        c: the ``c`` of recursive (c, l)-diversity.
        t: maximum earth mover's distance between a class's sensitive distribution and the
            table's (``None``: not required). Numeric sensitive attributes use the ordered
            distance, categorical ones the equal distance.
        max_suppression: fraction of records that may be suppressed (disabled when ``t``
            is set, since suppression would shift the reference distribution).
    """

    k: int
    l: int | None = None  # noqa: E741 - the literature's name
    l_kind: LDiversity = LDiversity.DISTINCT
    c: float = 2.0
    t: float | None = None
    max_suppression: float = 0.05

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")
        if self.l is not None and self.l < 1:
            raise ValueError(f"l must be at least 1, got {self.l}")
        if self.t is not None and not 0.0 <= self.t <= 1.0:
            raise ValueError(f"t must be in [0, 1], got {self.t}")
        if not 0.0 <= self.max_suppression < 1.0:
            raise ValueError("max_suppression must be in [0, 1)")
        if self.c <= 0:
            raise ValueError("c must be positive")


@dataclass(frozen=True)
class MondrianResult:
    """Partitions found by :func:`mondrian` (row positions into the input frame)."""

    partitions: tuple[IntArray, ...]
    suppressed: IntArray
    columns: tuple[str, ...]
    released: pd.DataFrame
    ncp: float
    """Normalised certainty penalty in [0, 1] over all input rows (suppressed rows count 1)."""
    ncp_per_column: dict[str, float]


class _Allow:
    """Vectorised allowability test on sensitive-value counts."""

    def __init__(self, model: PrivacyModel, sa: IntArray | None, m: int, numeric_sa: bool):
        self.model = model
        self.sa = sa
        self.m = m
        self.numeric_sa = numeric_sa
        self.p: FloatArray | None = None
        if sa is not None:
            self.p = np.bincount(sa, minlength=m).astype(np.float64) / len(sa)

    def counts(self, idx: IntArray) -> IntArray:
        assert self.sa is not None
        return np.bincount(self.sa[idx], minlength=self.m)

    def ok_counts(self, counts: IntArray, n: int) -> bool:
        model = self.model
        if n < model.k:
            return False
        if model.l is not None and model.l > 1:
            nz = counts[counts > 0]
            if len(nz) < model.l:
                return False
            if model.l_kind is LDiversity.ENTROPY:
                q = nz / n
                if -float(np.sum(q * np.log(q))) < math.log(model.l) - 1e-12:
                    return False
            elif model.l_kind is LDiversity.RECURSIVE:
                r = np.sort(nz)[::-1]
                if not r[0] < model.c * float(r[model.l - 1 :].sum()):
                    return False
        if model.t is not None and self.p is not None:
            q = counts / n
            diff = q - self.p
            if self.numeric_sa:
                emd = float(np.abs(np.cumsum(diff)).sum()) / max(self.m - 1, 1)
            else:
                emd = 0.5 * float(np.abs(diff).sum())
            if emd > model.t + 1e-12:
                return False
        return True

    @property
    def needs_sa(self) -> bool:
        return self.sa is not None and (
            (self.model.l is not None and self.model.l > 1) or self.model.t is not None
        )

    def ok(self, idx: IntArray) -> bool:
        if len(idx) < self.model.k:
            return False
        if not self.needs_sa:
            return True
        return self.ok_counts(self.counts(idx), len(idx))


def _fmt_number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.6g}"


def coded_formatter(top: float | None, bottom: float | None) -> Callable[[float], str]:
    """Number formatter that writes top-coded values as ``90+`` and bottom-coded as ``<=1936``."""

    def show(x: float) -> str:
        if top is not None and x >= top:
            return f"{_fmt_number(top)}+"
        if bottom is not None and x <= bottom:
            return f"<={_fmt_number(bottom)}"
        return _fmt_number(x)

    return show


def mondrian(
    df: pd.DataFrame,
    quasi_identifiers: Sequence[str],
    model: PrivacyModel,
    *,
    sensitive: str | None = None,
    hierarchies: Mapping[str, Hierarchy] | None = None,
    numeric: Sequence[str] | None = None,
    top_codes: Mapping[str, float] | None = None,
    bottom_codes: Mapping[str, float] | None = None,
) -> MondrianResult:
    """Anonymise ``df`` on ``quasi_identifiers`` so that every class satisfies ``model``.

    Args:
        df: the table (any index).
        quasi_identifiers: QI columns to generalise.
        model: k and the optional l-diversity / t-closeness requirements.
        sensitive: the sensitive column (required when ``model`` asks for l or t).
        hierarchies: categorical generalisation trees per column. Categorical QIs without
            one get set-valued generalisation: a class shows the set of its values
            (``"Divorced|Widowed"``, ``*`` for all of them).
        numeric: columns to treat as numeric ranges (default: numeric dtypes without a
            hierarchy).
        top_codes: numeric columns whose values at or above a threshold are shown as
            ``"<threshold>+"`` (Safe Harbor's ages 90+).
        bottom_codes: numeric columns whose values at or below a threshold are shown as
            ``"<=<threshold>"`` (birth years of people over 89).

    Returns:
        The partitions, the suppressed rows and the released (generalised) frame with the
        non-QI columns untouched and suppressed rows removed.

    Raises:
        AnonymizationError: k exceeds the number of rows, or the whole table already fails
            the l/t requirement.
        ValueError: unknown column or missing values in a numeric QI.

    Privacy: the released frame satisfies k-anonymity (and l/t when asked) with respect to
    the given quasi-identifiers; it protects nothing that is not declared a QI.
    """
    hierarchies = dict(hierarchies or {})
    qis = list(quasi_identifiers)
    for col in [*qis, *([sensitive] if sensitive else [])]:
        if col not in df.columns:
            raise ValueError(f"unknown column {col!r}")
    if not qis:
        raise ValueError("at least one quasi-identifier is required")
    n = len(df)
    if model.k > n:
        raise AnonymizationError(f"k={model.k} is larger than the table ({n} rows)")
    if ((model.l is not None and model.l > 1) or model.t is not None) and sensitive is None:
        raise ValueError("l-diversity and t-closeness need a sensitive column")

    numeric_cols = (
        set(numeric)
        if numeric is not None
        else {c for c in qis if c not in hierarchies and pd.api.types.is_numeric_dtype(df[c])}
    )
    num_idx: list[int] = []
    X = np.zeros((n, len(qis)), dtype=np.float64)
    compiled: dict[int, CompiledHierarchy] = {}
    domains: dict[int, list[str]] = {}  # set-valued columns: the observed values
    for j, col in enumerate(qis):
        if col in numeric_cols:
            values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
            if np.isnan(values).any():
                raise ValueError(f"numeric quasi-identifier {col!r} has missing values")
            X[:, j] = values
            num_idx.append(j)
            continue
        strings = df[col].astype("string").fillna("(missing)").to_numpy(dtype=object)
        h = hierarchies.get(col)
        if h is None:
            uniq, inv = np.unique(strings.astype(str), return_inverse=True)
            domains[j] = [str(u) for u in uniq]
            X[:, j] = inv.ravel()
            continue
        try:
            ch = CompiledHierarchy.build(h, strings.tolist())
        except KeyError as exc:
            raise ValueError(f"column {col!r}: {exc.args[0]}") from None
        compiled[j] = ch
        X[:, j] = [ch.leaf_codes[v] for v in strings]
    codes = X.astype(np.int64)
    lo_all = X.min(axis=0)
    span_all = np.where(X.max(axis=0) > lo_all, X.max(axis=0) - lo_all, 1.0)

    sa_codes: IntArray | None = None
    m = 0
    numeric_sa = False
    if sensitive is not None:
        sa_col = df[sensitive]
        numeric_sa = bool(pd.api.types.is_numeric_dtype(sa_col)) and not sa_col.isna().any()
        if numeric_sa:
            _, inv = np.unique(sa_col.to_numpy(dtype=np.float64), return_inverse=True)
        else:
            _, inv = np.unique(
                sa_col.astype("string").fillna("(missing)").to_numpy(dtype=str),
                return_inverse=True,
            )
        sa_codes = inv.astype(np.int64).ravel()
        m = int(sa_codes.max()) + 1 if len(sa_codes) else 0
    allow = _Allow(model, sa_codes, m, numeric_sa)
    root = np.arange(n, dtype=np.int64)
    if not allow.ok(root):
        what = f"l={model.l} ({model.l_kind.value})" if model.l else f"t={model.t}"
        raise AnonymizationError(
            f"the whole table does not satisfy {what} for {sensitive!r}; no generalisation can"
        )
    budget = math.floor(model.max_suppression * n) if model.t is None else 0
    suppressed: list[IntArray] = []
    done: list[IntArray] = []
    stack: list[IntArray] = [root]
    empty = np.empty(0, dtype=np.int64)

    def loss(idx: IntArray, j: int) -> float:
        if j in compiled:
            ch = compiled[j]
            return float(ch.leaf_count[ch.lca(codes[idx, j])] - 1) / max(ch.n_leaves - 1, 1)
        if j in domains:
            d = len(domains[j])
            present = np.count_nonzero(np.bincount(codes[idx, j], minlength=d))
            return float(present - 1) / max(d - 1, 1)
        col = X[idx, j]
        return float(col.max() - col.min()) / float(span_all[j])

    def split_numeric(idx: IntArray, j: int) -> list[IntArray] | None:
        v = X[idx, j]
        half = (len(v) - 1) // 2
        med = np.partition(v, half)[half]
        left = v <= med
        if left.all():
            left = v < med
        if not left.any():
            return None
        a, b = idx[left], idx[~left]
        if allow.ok(a) and allow.ok(b):
            return [a, b]
        return None

    def split_set(idx: IntArray, j: int) -> list[IntArray] | None:
        """Two groups of values with balanced row counts (set-valued generalisation)."""
        d = len(domains[j])
        vals = codes[idx, j]
        counts = np.bincount(vals, minlength=d)
        present = np.flatnonzero(counts)
        if len(present) < 2:
            return None
        side = np.zeros(d, dtype=bool)
        totals = [0, 0]
        for code in present[np.argsort(-counts[present], kind="stable")]:
            g = 0 if totals[0] <= totals[1] else 1
            side[code] = bool(g)
            totals[g] += int(counts[code])
        mask = side[vals]
        a, b = idx[~mask], idx[mask]
        if allow.ok(a) and allow.ok(b):
            return [a, b]
        biggest = present[np.argmax(counts[present])]  # one value against the rest
        mask = vals == biggest
        a, b = idx[mask], idx[~mask]
        if allow.ok(a) and allow.ok(b):
            return [a, b]
        return None

    def split_hierarchy(idx: IntArray, j: int) -> tuple[list[IntArray], IntArray] | None:
        ch = compiled[j]
        leaf = codes[idx, j]
        node = ch.lca(leaf)
        child = ch.child_map(node)[leaf]
        n_child = int(child.max()) + 1
        sizes = np.bincount(child, minlength=n_child)
        if allow.needs_sa:
            assert sa_codes is not None
            table = np.bincount(child * m + sa_codes[idx], minlength=n_child * m).reshape(
                n_child, m
            )
            good = np.array([allow.ok_counts(table[i], int(sizes[i])) for i in range(n_child)])
        else:
            good = sizes >= model.k
        order = np.argsort(child, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        groups = [idx[order[bounds[i] : bounds[i + 1]]] for i in range(n_child)]
        parts = [groups[i] for i in range(n_child) if good[i] and sizes[i] > 0]
        rest_list = [groups[i] for i in range(n_child) if not good[i] and sizes[i] > 0]
        dropped = empty
        if rest_list:
            rest = np.concatenate(rest_list)
            if allow.ok(rest):
                parts.append(rest)
            elif (
                len(rest) < model.k
                and len(rest) <= budget
                and _suppression_pays(ch, node, parts, rest, leaf_of=codes[:, j], n_qis=len(qis))
            ):
                dropped = rest
            elif parts:
                smallest = min(range(len(parts)), key=lambda i: len(parts[i]))
                merged = np.concatenate([parts[smallest], rest])
                if not allow.ok(merged):
                    return None
                parts[smallest] = merged
            else:
                return None
        if len(parts) < 2 and len(dropped) == 0:
            return None
        return parts, dropped

    n_qis = len(qis)
    while stack:
        idx = stack.pop()
        before = [loss(idx, j) for j in range(n_qis)]
        best: tuple[float, list[IntArray], IntArray] | None = None
        for j in range(n_qis):
            if before[j] <= 0.0:
                continue
            res: tuple[list[IntArray], IntArray] | None
            if j in compiled:
                res = split_hierarchy(idx, j)
            else:
                halves = split_set(idx, j) if j in domains else split_numeric(idx, j)
                res = (halves, empty) if halves is not None else None
            if res is None:
                continue
            parts, dropped = res
            if len(dropped) > budget:
                continue
            # information regained in the split dimension, minus what suppression costs
            gain = len(idx) * before[j] - sum(len(p) * loss(p, j) for p in parts)
            gain -= len(dropped) * n_qis
            if best is None or gain > best[0]:
                best = (gain, parts, dropped)
        if best is None:
            done.append(idx)
            continue
        _, parts, dropped = best
        if len(dropped):
            budget -= len(dropped)
            suppressed.append(dropped)
        stack.extend(parts)

    return _release(
        df,
        qis,
        done,
        suppressed,
        X,
        codes,
        compiled,
        domains,
        span_all,
        set(num_idx),
        top_codes or {},
        bottom_codes or {},
    )


def _suppression_pays(
    ch: CompiledHierarchy,
    node: int,
    parts: list[IntArray],
    rest: IntArray,
    leaf_of: IntArray,
    n_qis: int,
) -> bool:
    """Suppress a small remainder only when that loses less than pooling it would.

    Suppressing ``r`` rows costs ``r * n_qis`` (every QI fully generalised); merging them
    into the smallest part keeps that part at ``node`` instead of its child.
    """
    if not parts or ch.n_leaves <= 1:
        return bool(not parts)
    smallest = min(parts, key=len)
    child = ch.lca(leaf_of[smallest])
    delta = float(ch.leaf_count[node] - ch.leaf_count[child]) / (ch.n_leaves - 1)
    return len(rest) * n_qis < (len(smallest) + len(rest)) * delta


SET_SEPARATOR = "|"
"""Joins the values of a set-valued generalisation (``"Divorced|Widowed"``)."""


def _set_labels(
    values: IntArray, group: IntArray, n_groups: int, domain: list[str]
) -> tuple[npt.NDArray[np.object_], FloatArray]:
    """Per group: the sorted set of present values (``*`` when it is the whole domain)."""
    d = len(domain)
    pairs = np.unique(group * d + values)
    g, v = pairs // d, pairs % d
    cuts = np.flatnonzero(np.diff(g)) + 1
    labels = np.empty(n_groups, dtype=object)
    loss = np.zeros(n_groups, dtype=np.float64)
    for gv, vv in zip(np.split(g, cuts), np.split(v, cuts), strict=True):
        if not len(gv):
            continue
        names = sorted(domain[int(x)] for x in vv)
        labels[int(gv[0])] = "*" if len(names) == d and d > 1 else SET_SEPARATOR.join(names)
        loss[int(gv[0])] = (len(names) - 1) / max(d - 1, 1)
    return labels, loss


def _release(
    df: pd.DataFrame,
    qis: list[str],
    done: list[IntArray],
    suppressed: list[IntArray],
    X: FloatArray,
    codes: IntArray,
    compiled: dict[int, CompiledHierarchy],
    domains: dict[int, list[str]],
    span_all: FloatArray,
    num_idx: set[int],
    top_codes: Mapping[str, float],
    bottom_codes: Mapping[str, float],
) -> MondrianResult:
    n = len(df)
    sup = np.sort(np.concatenate(suppressed)) if suppressed else np.empty(0, dtype=np.int64)
    order = np.concatenate(done) if done else np.empty(0, dtype=np.int64)
    sizes = np.array([len(p) for p in done], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    group = np.repeat(np.arange(len(done)), sizes)
    loss = np.ones((n, len(qis)), dtype=np.float64)
    released = df.copy()
    for j, col in enumerate(qis):
        labels = np.empty(n, dtype=object)
        if j in num_idx:
            v = X[order, j]
            lo = np.minimum.reduceat(v, starts) if len(v) else v
            hi = np.maximum.reduceat(v, starts) if len(v) else v
            show = coded_formatter(top_codes.get(col), bottom_codes.get(col))

            texts = np.array(
                [
                    show(a) if a == b else f"[{show(a)}-{show(b)}]"
                    for a, b in zip(lo, hi, strict=True)
                ],
                dtype=object,
            )
            part_loss = (hi - lo) / span_all[j]
        elif j in domains:
            texts, part_loss = _set_labels(codes[order, j], group, len(done), domains[j])
        else:
            ch = compiled[j]
            nodes = ch.lca_groups(codes[order, j], starts) if len(order) else np.empty(0, np.int64)
            texts = np.array([ch.labels[int(x)] for x in nodes], dtype=object)
            denom = max(ch.n_leaves - 1, 1)
            part_loss = (ch.leaf_count[nodes] - 1) / denom
        labels[order] = texts[group]
        loss[order, j] = part_loss[group]
        released[col] = labels
    keep = np.ones(n, dtype=bool)
    keep[sup] = False
    released = released.iloc[np.flatnonzero(keep)].reset_index(drop=True)
    ncp = float(loss.mean()) if n else 0.0
    per_col = {col: float(loss[:, j].mean()) for j, col in enumerate(qis)}
    return MondrianResult(
        partitions=tuple(done),
        suppressed=sup,
        columns=tuple(qis),
        released=released,
        ncp=ncp,
        ncp_per_column=per_col,
    )
