"""The stat cache saved incrementally (records copied for unchanged paths, rows read one at a time) is
byte for byte the cache a full encode of the same state writes, and loads back to that state."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from dvx.ids import hash_bytes
from dvx.model import FILE, Entry, link_entry
from dvx.worktree import RACY_NS, Cached, StatCache

PATHS = [f"d{i % 3}/f{i}" for i in range(12)] + ["top", "d1/sub/deep"]
NOW = 10 * RACY_NS


def _id(n: int) -> str:
    return hash_bytes(b"%d" % n)


def _full_body(rows: dict[str, Cached], head: dict[str, Entry], commit: str | None, tree: str | None) -> bytes:
    """The oracle: a cache never loaded from a file, encoding every row and HEAD entry."""
    fresh = StatCache(Path("/nonexistent/index"))
    fresh._rows = dict(rows)  # noqa: SLF001 - building the state the tested cache should be in
    if commit is not None and tree is not None:
        fresh.set_head(commit, tree, head)
    return fresh._encode_body()[0]  # noqa: SLF001


def _state(cache: StatCache) -> tuple[dict[str, Cached], dict[str, Entry]]:
    """Rows and HEAD listing as a freshly loaded copy of the file reads them."""
    again = StatCache(cache.path).load()
    return dict(again.entries), dict(again.head_entries(again.head_commit) or {})


op = st.one_of(
    st.tuples(st.just("record"), st.sampled_from(PATHS), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("retain"), st.sets(st.sampled_from(PATHS))),
    st.tuples(st.just("forget"), st.sampled_from(PATHS)),
    st.tuples(st.just("head"), st.sets(st.sampled_from(PATHS)), st.integers(0, 3)),
    st.tuples(st.just("save")),
    st.tuples(st.just("reload")),
    st.tuples(st.just("all rows")),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(op, max_size=25))
def test_incremental_saves_equal_a_full_encode(ops: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index"
        cache = StatCache(path).load()
        rows: dict[str, Cached] = {}
        head: dict[str, Entry] = {}
        commit: str | None = None
        tree: str | None = None
        n_commits = 0
        for o in ops:
            kind = o[0]
            if kind == "record":
                _, p, content, settled = o
                key = (len(p) + content, 5 if settled else NOW, 5 if settled else NOW, 7)
                cache.record_key(p, key, _id(content), NOW)
                rows[p] = Cached(key, _id(content), settled)
            elif kind == "retain":
                cache.retain(set(o[1]))
                rows = {p: c for p, c in rows.items() if p in o[1]}
            elif kind == "forget":
                cache.forget(o[1])
                rows.pop(o[1], None)
            elif kind == "head":
                # As a commit does: unchanged paths keep the Entry objects of the listing the cache holds.
                _, paths, change = o
                old = cache.head_entries(commit) or {}
                flat: dict[str, Entry] = {}
                for p in sorted(paths):
                    name = p.rpartition("/")[2]
                    if p in old and change == 0:
                        flat[p] = old[p]
                    elif change == 3:
                        flat[p] = link_entry(name, f"../t{len(p)}")
                    else:
                        row = rows.get(p)
                        same = row is not None and change == 1
                        flat[p] = Entry(name, FILE, row.id if same and row else _id(100 + len(p)),
                                        row.key[0] if same and row else 9, change == 2)
                n_commits += 1
                commit, tree = _id(1000 + n_commits), _id(2000 + n_commits)
                cache.set_head(commit, tree, flat)
                head = dict(flat)
            elif kind == "save":
                cache.save()
                assert cache.encode() == cache.encode()  # encoding again (no change) is stable
            elif kind == "reload":
                cache.save()
                cache = StatCache(path).load()
            elif kind == "all rows":
                assert cache.entries == rows
            for p in PATHS:
                assert cache.row(p) == rows.get(p)
        cache.save()
        body = cache._encode_body()[0]  # noqa: SLF001
        assert body == _full_body(rows, head, commit, tree)
        got_rows, got_head = _state(cache)
        assert got_rows == rows
        assert got_head == (head if head else {})
