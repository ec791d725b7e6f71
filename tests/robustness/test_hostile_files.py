"""Model files written by an attacker or broken by accident: load reads only what the
format declares, with memory bounded by the description, and every failure is a
ModelFileError naming the file; save's edge cases (links, special files, long names, files
left by killed saves)."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import threading
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

import backprop as bp

MB = 1 << 20


def _model(optimizer: bp.Optimizer | None = None) -> bp.Sequential:
    model = bp.Sequential([bp.Dense(4, 5), bp.ReLU(), bp.Dense(5, 2)], dtype="float32", seed=0)
    return model.compile(bp.MSE(), optimizer or bp.Adam(lr=0.01))


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def _write(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _saved(tmp_path: Path, optimizer: bp.Optimizer | None = None) -> dict[str, bytes]:
    path = tmp_path / "good.npz"
    model = _model(optimizer)
    model.fit(np.ones((8, 4)), np.zeros((8, 2)), epochs=1)
    model.save(path)
    return _members(path)


def _config(members: dict[str, bytes]) -> dict:
    return json.loads(np.load(io.BytesIO(members["config.npy"])).tobytes())


def _with_config(members: dict[str, bytes], config: dict | str) -> dict[str, bytes]:
    text = config if isinstance(config, str) else json.dumps(config)
    return {**members, "config.npy": _npy(np.frombuffer(text.encode(), dtype=np.uint8))}


def _load_bounded(path: Path, limit: int = 16 * MB) -> Exception:
    """load(path) must fail with ModelFileError naming the file, allocating < limit."""
    tracemalloc.start()
    try:
        with pytest.raises(bp.ModelFileError) as info:
            bp.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value)
    assert peak < limit, f"load allocated {peak / MB:.0f} MB before refusing the file"
    return info.value


# -- 1: memory bounded by the description


def _bomb(n_bytes: int) -> bytes:
    """An .npy member of n_bytes zeros (deflates to ~n_bytes / 1000)."""
    return _npy(np.zeros(n_bytes // 4, dtype=np.float32))


def test_an_extra_member_that_inflates_to_hundreds_of_megabytes_is_refused_unread(tmp_path):
    members = _saved(tmp_path) | {"opt_extra.npy": _bomb(256 * MB)}
    error = _load_bounded(_write(tmp_path / "bomb.npz", members))
    assert "opt_extra.npy" in str(error)


def test_a_huge_config_is_refused_before_it_is_inflated(tmp_path):
    members = _saved(tmp_path)
    members["config.npy"] = _npy(np.zeros(256 * MB, dtype=np.uint8))
    error = _load_bounded(_write(tmp_path / "config.npz", members))
    assert "'config' declares" in str(error)


@pytest.mark.parametrize("member", ["theta.npy", "opt_m.npy", "opt_v.npy"])
def test_an_array_of_the_wrong_size_is_refused_before_it_is_inflated(tmp_path, member):
    members = _saved(tmp_path) | {member: _bomb(256 * MB)}
    error = _load_bounded(_write(tmp_path / "big.npz", members))
    assert "declares" in str(error) and "allows at most 148" in str(error)


def test_a_header_that_lies_about_the_shape_is_refused(tmp_path):
    members = _saved(tmp_path)
    members["theta.npy"] = _npy(np.zeros(10, dtype=np.float32))  # 37 are needed
    error = _load_bounded(_write(tmp_path / "short.npz", members))
    assert "expected float32 of shape (37,), found float32 (10,)" in str(error)


def test_a_member_stored_twice_is_refused(tmp_path):
    members = _saved(tmp_path)
    path = tmp_path / "twice.npz"
    with zipfile.ZipFile(path, "w") as zf, pytest.warns(UserWarning, match="Duplicate"):
        for name, data in [*members.items(), ("theta.npy", members["theta.npy"])]:
            zf.writestr(name, data)
    assert "stored twice" in str(_load_bounded(path))


# -- 2: every failure is a ModelFileError


def _edited(tmp_path: Path, edit) -> Path:
    members = _saved(tmp_path)
    config = _config(members)
    edit(config)
    return _write(tmp_path / "edited.npz", _with_config(members, config))


@pytest.mark.parametrize(
    "edit",
    [
        lambda c: c["optimizer"].update(steps=2**63),
        lambda c: c["optimizer"].update(steps=-(2**70)),
        lambda c: c["optimizer"]["config"].update(lr=10**400),
        lambda c: c["optimizer"]["config"].update(lr="0.1"),
        lambda c: c["optimizer"]["config"].update(betas=[0.9]),
        lambda c: c["optimizer"].update(lr=0.5),  # a key a spec does not have
        lambda c: c["rng"]["state"].update(state=2**200),
        lambda c: c["rng"]["state"].update(inc=-1),
        lambda c: c.update(rng="PCG64"),
        lambda c: c.update(dropout_rng=2**64),
        lambda c: c.update(seed=-1),
        lambda c: c.update(training=None),
        lambda c: c["layers"][0]["config"].update(in_features=2**63),
        lambda c: c["layers"][0]["config"].update(in_features=10**400),
        lambda c: c["layers"][0]["config"].update(out_features=1.5),
        lambda c: c["layers"].append(None),
        lambda c: c.update(layers={"class": "Dense"}),
        lambda c: c.update(metrics="accuracy"),
        lambda c: c.update(loss={"class": "Huber", "config": {"delta": -1}}),
        lambda c: c.update(dtype=["float32"]),
        lambda c: c.pop("rng"),
    ],
)
def test_any_bad_value_in_the_description_is_a_model_file_error(tmp_path, edit):
    _load_bounded(_edited(tmp_path, edit))


def test_deeply_nested_json_is_a_model_file_error(tmp_path):
    members = _with_config(_saved(tmp_path), "[" * 100_000 + "]" * 100_000)
    _load_bounded(_write(tmp_path / "deep.npz", members))


def test_an_integer_too_long_to_parse_is_a_model_file_error(tmp_path):
    config = json.dumps(_config(_saved(tmp_path))).replace('"seed": 0', '"seed": ' + "9" * 5000)
    _load_bounded(_write(tmp_path / "long.npz", _with_config(_saved(tmp_path), config)))


def test_config_that_is_not_utf8_is_a_model_file_error(tmp_path):
    members = _saved(tmp_path)
    members["config.npy"] = _npy(np.frombuffer(b"\xff\xfe{", dtype=np.uint8))
    _load_bounded(_write(tmp_path / "bytes.npz", members))


# -- 3: the file's numbers are checked as the constructor checks them


@pytest.mark.parametrize(
    ("member", "value", "message"),
    [
        ("theta.npy", np.nan, "'weights' holds NaN"),
        ("theta.npy", np.inf, "'weights' holds NaN"),
        ("opt_m.npy", np.nan, "buffer m' holds NaN"),
        ("opt_v.npy", -1.0, "second moment"),
        ("opt_v.npy", np.inf, "buffer v' holds NaN"),
    ],
)
def test_non_finite_or_invalid_numbers_are_refused(tmp_path, member, value, message):
    members = _saved(tmp_path)
    array = np.load(io.BytesIO(members[member])).copy()
    array[3] = value
    path = _write(tmp_path / "numbers.npz", members | {member: _npy(array)})
    assert message in str(_load_bounded(path))


def test_a_non_finite_velocity_is_refused(tmp_path):
    members = _saved(tmp_path, bp.SGD(lr=0.1, momentum=0.9))
    array = np.load(io.BytesIO(members["opt_velocity.npy"])).copy()
    array[0] = np.nan
    path = _write(tmp_path / "velocity.npz", members | {"opt_velocity.npy": _npy(array)})
    assert "buffer velocity' holds NaN" in str(_load_bounded(path))


# -- 8: save's edge cases


def test_save_writes_through_a_symlink_and_the_link_stays_a_link(tmp_path):
    target = tmp_path / "real.npz"
    link = tmp_path / "link.npz"
    _model().save(target)
    link.symlink_to(target)
    model = _model(bp.SGD(lr=0.1))
    model.save(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert bp.load(target).optimizer.get_config() == model.optimizer.get_config()


@pytest.mark.parametrize("kind", ["directory", "fifo", "device"])
def test_save_refuses_a_path_that_is_not_a_regular_file(tmp_path, kind):
    if kind == "directory":
        path = tmp_path / "dir.npz"
        path.mkdir()
    elif kind == "fifo":
        path = tmp_path / "pipe.npz"
        os.mkfifo(path)
    else:
        path = Path(os.devnull)
    before = os.stat(path)
    with pytest.raises(IsADirectoryError, match="give the path of a file"):
        _model().save(path)
    after = os.stat(path)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".backprop-save")]


def test_save_keeps_an_existing_files_permission_bits(tmp_path):
    path = tmp_path / "m.npz"
    _model().save(path)
    os.chmod(path, 0o640)
    _model().save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_save_works_for_the_longest_name_the_filesystem_accepts(tmp_path):
    max_name = os.pathconf(tmp_path, "PC_NAME_MAX")
    path = tmp_path / ("m" * (max_name - 4) + ".npz")
    _model().save(path)
    assert bp.load(path).n_params == 37


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_save_removes_temporaries_of_dead_saves_only(tmp_path):
    dead = tmp_path / f".backprop-save.{_dead_pid()}.0123abcd.tmp"
    alive = tmp_path / f".backprop-save.{os.getppid()}.0123abcd.tmp"  # a live process's
    other = tmp_path / ".m.npz.999999.tmp"  # not a name save uses: never touched
    for p in (dead, alive, other):
        p.write_bytes(b"partial")
    _model().save(tmp_path / "m.npz")
    assert not dead.exists() and alive.exists() and other.exists()


def test_load_refuses_a_fifo_instead_of_waiting_for_a_writer(tmp_path):
    path = tmp_path / "pipe.npz"
    os.mkfifo(path)
    result: list[BaseException] = []

    def load() -> None:
        try:
            bp.load(path)
        except BaseException as e:
            result.append(e)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "load blocked on a FIFO"
    assert isinstance(result[0], bp.ModelFileError) and "not a regular file" in str(result[0])
    with pytest.raises(bp.ModelFileError, match="not a regular file"):
        bp.load(os.devnull)
