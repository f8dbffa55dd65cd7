"""The store's vectors as one memmap + hash index: same vectors as the shards, first shard wins on a
duplicate, rebuilt when a shard is added, and the Mapping behaviour stages relied on."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from brainscan_exp.features.store import EmbeddingStore
from brainscan_exp.features.vectors import VectorTable, as_matrix


def _hashes(n, start=0):
    return [f"{k:040x}" for k in range(start, start + n)]


def test_store_table_is_one_memmap_with_the_shards_vectors(tmp_path):
    rng = np.random.default_rng(0)
    store = EmbeddingStore(tmp_path, {"backbone": "test"})
    a, b = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32)
    store.write_shard(_hashes(5), a)
    store.write_shard(_hashes(4, start=3), b)  # hashes 3 and 4 written twice
    table = store.table()
    assert isinstance(table.matrix, np.memmap) and table.matrix.dtype == np.float32
    assert table.matrix.flags.c_contiguous and len(table) == 7 and table.dim == 3
    # a duplicate keeps the vector of the first shard in name order, as the dict reader did
    first_is_a = len(pq.read_table(store.shards()[0]).column("pixel_hash")) == 5
    expected = dict(zip(_hashes(5), a))
    for h, v in zip(_hashes(4, start=3), b):
        if not (first_is_a and h in expected):
            expected[h] = v
    for h, v in expected.items():
        np.testing.assert_array_equal(table[h], v)
    X = table.take([_hashes(7)[6], _hashes(7)[0]])
    np.testing.assert_array_equal(X[1], a[0])
    np.testing.assert_array_equal(X[0], b[3])
    loaded = store.load(_hashes(2) + ["f" * 40])
    assert sorted(loaded) == _hashes(2)


def test_store_table_rebuilt_when_a_shard_is_added(tmp_path):
    store = EmbeddingStore(tmp_path, {"backbone": "test"})
    store.write_shard(_hashes(2), np.ones((2, 4), np.float32))
    assert len(store.table()) == 2
    store.write_shard(_hashes(3, start=2), np.zeros((3, 4), np.float32))
    table = store.table()
    assert len(table) == 5 and len(list(store.dir.glob("vectors-*.npy"))) == 1
    np.testing.assert_array_equal(table[_hashes(5)[4]], np.zeros(4))


def test_vector_table_mapping_behaviour():
    vectors = {h: np.full(2, k, np.float32) for k, h in enumerate(["b", "a", "c"])}
    table = VectorTable.from_dict(vectors)
    assert "a" in table and "z" not in table and 3 not in table
    assert list(table) == ["b", "a", "c"] and len(table) == 3
    with pytest.raises(KeyError):
        table.take(["a", "z"])
    np.testing.assert_array_equal(table.rows(["z", "c"], missing="skip"), [-1, 2])
    np.testing.assert_array_equal(as_matrix(table, ["c", "b"]), [[2, 2], [0, 0]])
    np.testing.assert_array_equal(as_matrix(vectors, ["c", "b"]), [[2, 2], [0, 0]])
    assert as_matrix(table, [], dim=2).shape == (0, 2)
    wide = table.hstack([VectorTable.from_dict({h: -v for h, v in vectors.items()})], hashes=["a"])
    np.testing.assert_array_equal(wide["a"], [1, 1, -1, -1])
    both = VectorTable.concat([table, VectorTable.from_dict({"a": np.zeros(2), "d": np.ones(2)})])
    assert len(both) == 4
    np.testing.assert_array_equal(both["a"], [1, 1])
    with pytest.raises(ValueError):
        VectorTable(["a", "a"], np.zeros((2, 1), np.float32))


def test_row_view_reads_only_the_rows_asked_for():
    matrix = np.arange(20, dtype=np.float32).reshape(10, 2)
    table = VectorTable([f"h{k}" for k in range(10)], matrix)
    view = table.view(["h7", "h2", "h5"])
    assert len(view) == 3 and view.shape == (3, 2) and view.ndim == 2
    np.testing.assert_array_equal(view[0], [14, 15])
    np.testing.assert_array_equal(view[1:], [[4, 5], [10, 11]])
    np.testing.assert_array_equal(view[np.array([2, 0])], [[10, 11], [14, 15]])
    np.testing.assert_array_equal(np.asarray(view, dtype=np.float64), table.take(["h7", "h2", "h5"]))
