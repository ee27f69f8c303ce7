"""The shared durable-write helpers: a failed write leaves the old file intact."""

import hashlib

import pytest

from cnnlab._io import atomic_write, atomic_write_bytes, atomic_write_text, file_hash


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    p = tmp_path / "a.txt"
    atomic_write_text(p, "one")
    atomic_write_text(p, "two")
    assert p.read_text() == "two"
    assert [q.name for q in tmp_path.iterdir()] == ["a.txt"]


def test_interrupted_write_keeps_the_previous_file(tmp_path):
    p = tmp_path / "w.bin"
    atomic_write_bytes(p, b"good")
    with pytest.raises(KeyboardInterrupt), atomic_write(p) as f:
        f.write(b"half")
        raise KeyboardInterrupt
    assert p.read_bytes() == b"good"
    assert [q.name for q in tmp_path.iterdir()] == ["w.bin"]


def test_file_hash_matches_hashlib(tmp_path):
    p = tmp_path / "h"
    data = bytes(range(256)) * 5000
    p.write_bytes(data)
    assert file_hash(p) == hashlib.sha256(data).hexdigest()
    assert file_hash(p, "md5") == hashlib.md5(data).hexdigest()
