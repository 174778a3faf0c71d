"""mmcodec.files: the one atomic write. A reader sees the old file or the whole new one,
and a failure at any point leaves no temporary file behind."""
from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import pytest

import mmcodec.files
from mmcodec.files import atomic_output, atomic_write


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "x.mmc"
    target.write_bytes(b"old")
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.mmc"]


def test_atomic_write_leaves_nothing_when_the_rename_fails(tmp_path, monkeypatch):
    def no_space(*_):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(tmp_path / "x.mmc", b"data")
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "ckpt.pt"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="writer broke"):
        with atomic_output(target) as tmp:
            assert tmp.parent == tmp_path and tmp != target
            tmp.write_bytes(b"half")
            raise RuntimeError("writer broke")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_atomic_output_gives_a_path_for_writers_that_need_one(tmp_path):
    target = tmp_path / "image.png"
    with atomic_output(target) as tmp:
        tmp.write_text("written by path")
    assert target.read_text() == "written by path"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.png"]


def test_files_imports_only_the_standard_library():
    # Every layer writes files through this module, so it must depend on nothing.
    tree = ast.parse(Path(mmcodec.files.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported
