"""Hypothesis: the tree merge against a per-file model, and its symmetry."""

from __future__ import annotations

from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from dvx.merge import DELETED_MODIFIED, MODIFIED_DELETED, merge_trees

CODES = ["f1", "f2", "f3", "x1", "x2", "l1", "l2"]
MIRROR = {MODIFIED_DELETED: DELETED_MODIFIED, DELETED_MODIFIED: MODIFIED_DELETED}

paths = st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=3).map("/".join)
codes = st.sampled_from(CODES)


def valid(flat: dict[str, str]) -> dict[str, str]:
    """Drop files that would also have to be directories (``a`` when ``a/b`` exists)."""
    return {p: c for p, c in flat.items() if not any(q.startswith(p + "/") for q in flat)}


def apply(base: dict[str, str], changes: dict[str, str | None]) -> dict[str, str]:
    out = dict(base)
    for p, c in changes.items():
        if c is None:
            out.pop(p, None)
        else:
            out[p] = c
    return valid(out)


def per_file(b: dict[str, str], o: dict[str, str], t: dict[str, str]) -> dict[str, str] | None:
    """The merge of flat listings path by path; None if some path changed differently on both sides."""
    out: dict[str, str] = {}
    for p in b.keys() | o.keys() | t.keys():
        x, y, z = b.get(p), o.get(p), t.get(p)
        if y == z:
            r = y
        elif x == y:
            r = z
        elif x == z:
            r = y
        elif x is not None and y is not None and z is not None and all(c[0] in "fx" for c in (x, y, z)):
            # files on all three: content and exec bit merge apart (as git merges content and mode)
            if y[1:] != x[1:] and z[1:] not in (x[1:], y[1:]):
                return None
            content = z[1:] if y[1:] == x[1:] else y[1:]
            r = (z[0] if y[0] == x[0] else y[0]) + content
        else:
            return None
        if r is not None:
            out[p] = r
    return out


side_changes = st.dictionaries(paths, st.one_of(st.none(), codes), max_size=8)


@settings(max_examples=200, deadline=None)
@given(
    base=st.dictionaries(paths, codes, max_size=12).map(valid),
    ours_changes=side_changes,
    theirs_changes=side_changes,
    both=st.dictionaries(paths, st.tuples(st.one_of(st.none(), codes), st.one_of(st.none(), codes)), max_size=3),
)
def test_merge_is_symmetric_and_matches_the_per_file_model(
    h: Any,
    base: dict[str, str],
    ours_changes: dict[str, str | None],
    theirs_changes: dict[str, str | None],
    both: dict[str, tuple[str | None, str | None]],
) -> None:
    """``both``: paths both sides change (to the same or different things), to meet conflicts often."""
    mem = h.MemoryTrees()
    ours_changes = {**ours_changes, **{p: v[0] for p, v in both.items()}}
    theirs_changes = {**theirs_changes, **{p: v[1] for p, v in both.items()}}
    ours, theirs = apply(base, ours_changes), apply(base, theirs_changes)
    b, o, t = mem.tree(base), mem.tree(ours), mem.tree(theirs)

    ab, c_ab, m_ab = merge_trees(mem, b, o, t)
    ba, c_ba, m_ba = merge_trees(mem, b, t, o)
    # A into B and B into A: the same conflicts (mirrored), and the same tree when there are none.
    assert [(c.path, MIRROR.get(c.kind, c.kind)) for c in c_ab] == [(c.path, c.kind) for c in c_ba]
    event("conflicts" if c_ab else "clean")
    model = per_file(base, ours, theirs)
    if not c_ab:
        assert ab == ba
        assert model is not None
        assert h.flat_codes(m_ab, ab) == model
    else:  # a conflict only where the model has one, or where its result is no tree (``a`` and ``a/b``)
        assert model is None or valid(model) != model, (c_ab, model)
    # Resolving toward a side is symmetric too, and every result is canonically encoded.
    for strategy, other in (("ours", "theirs"), ("theirs", "ours")):
        x, _, mx = merge_trees(mem, b, o, t, strategy)
        y, _, _ = merge_trees(mem, b, t, o, other)
        assert x == y
        flat = h.flat_codes(mx, x)
        assert x == h.tree_id(flat)
        for c in c_ab:  # a conflicting path holds the chosen side's version
            chosen = ours if strategy == "ours" else theirs
            under = {p: v for p, v in flat.items() if p == c.path or p.startswith(c.path + "/")}
            assert under == {p: v for p, v in chosen.items() if p == c.path or p.startswith(c.path + "/")}
    # Trivial merges.
    assert merge_trees(mem, b, b, t)[0] == t
    assert merge_trees(mem, b, o, b)[0] == o
    assert merge_trees(mem, b, o, o)[0] == o
