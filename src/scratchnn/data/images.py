"""Images for CNN classifiers: list a folder, decode with Pillow, normalise with train statistics.

A training folder has one subfolder per class (its name is the label) holding image files,
possibly in nested folders. Hidden files and folders (names starting with '.') are skipped;
every other file must be an image Pillow can decode, else :class:`ImageReadError` names it.
Images are converted to one channel mode ('L' grey or 'RGB') and resized (stretched, bilinear)
to one (H, W) size.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["COLOR_MODES", "ImageNormalizer", "ImageReadError", "detect_color_mode",
           "folder_fingerprint", "list_image_folder", "list_images", "read_images"]

#: Channel modes an image can be converted to; 'auto' picks 'L' when every image is grey.
COLOR_MODES: tuple[str, ...] = ("auto", "L", "RGB")
_CHANNELS = {"L": 1, "RGB": 3}
#: Pillow modes that hold no colour.
_GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_FORMAT = "scratchnn.image_normalizer"


class ImageReadError(ValueError):
    """An image file (named in the message) could not be read, or a folder is not usable."""


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def list_images(root: str | os.PathLike) -> list[Path]:
    """Every non-hidden file under ``root`` (recursively), sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise ImageReadError(f"image folder {root} does not exist or is not a folder")
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files += [Path(folder) / n for n in names if not n.startswith(".")]
    return sorted(files)


def list_image_folder(root: str | os.PathLike) -> tuple[list[Path], list[str], list[str]]:
    """(files, labels, classes) of a folder with one subfolder per class; files sorted.

    Raises:
        ImageReadError: no folder, a file outside the class subfolders, fewer than 2 classes,
            or a class without files.
    """
    root = Path(root)
    if not root.is_dir():
        raise ImageReadError(f"image folder {root} does not exist or is not a folder")
    entries = sorted(p for p in root.iterdir() if _visible(p))
    loose = [p for p in entries if not p.is_dir()]
    if loose:
        raise ImageReadError(f"image folder {root} has file {loose[0].name!r} outside the "
                             "class subfolders (expected one subfolder per class)")
    classes = [p.name for p in entries]
    if len(classes) < 2:
        raise ImageReadError(f"image folder {root} needs at least 2 class subfolders, found "
                             f"{len(classes)}: {classes}")
    files: list[Path] = []
    labels: list[str] = []
    for name in classes:
        found = list_images(root / name)
        if not found:
            raise ImageReadError(f"class folder {root / name} has no image files")
        files += found
        labels += [name] * len(found)
    return files, labels, classes


def _open(path: Path) -> Any:
    from PIL import Image

    try:
        return Image.open(path)
    except FileNotFoundError:
        raise ImageReadError(f"image file {path} does not exist") from None
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise ImageReadError(f"cannot read image file {path}: not an image Pillow can "
                             f"decode ({type(e).__name__})") from None


def detect_color_mode(paths: Sequence[Path]) -> str:
    """'L' when every image is grey (by its stored mode), else 'RGB'; reads headers only."""
    for path in paths:
        with _open(path) as img:
            if img.mode not in _GREY_MODES:
                return "RGB"
    return "L"


def read_images(paths: Sequence[Path], mode: str, size: tuple[int, int]) -> np.ndarray:
    """Decode, convert to ``mode`` and resize each file: uint8 (N, C, H, W).

    Raises:
        ImageReadError: a file is not an image Pillow can decode, or is truncated (the
            message names it).
    """
    from PIL import Image

    if mode not in _CHANNELS:
        raise ValueError(f"mode must be 'L' or 'RGB', got {mode!r}")
    h, w = size
    out = np.empty((len(paths), _CHANNELS[mode], h, w), dtype=np.uint8)
    for i, path in enumerate(paths):
        with _open(path) as img:
            try:
                img = img.convert(mode).resize((w, h), Image.Resampling.BILINEAR)
            except (OSError, ValueError, SyntaxError) as e:
                raise ImageReadError(f"cannot read image file {path}: corrupt or truncated "
                                     f"({e})") from None
            arr = np.asarray(img, dtype=np.uint8)  # (H, W) or (H, W, C)
        out[i] = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return out


def folder_fingerprint(root: str | os.PathLike, files: Sequence[Path]) -> str:
    """SHA-256 over the relative paths and bytes of ``files``: changes when the data does."""
    root = Path(root)
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root).as_posix()).encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


class ImageNormalizer:
    """Scale pixel values to [0, 1], then standardise each channel with training statistics.

    Args:
        channels: C of the images (1 or 3).
        size: (H, W) of the images.
        scale: the largest raw pixel value (255 for 8-bit images, 16 for ``digits``).
        mean, std: per-channel statistics of the scaled training pixels (None: unfitted).
    """

    def __init__(self, channels: int, size: Sequence[int], scale: float,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels!r}")
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"size must be (H, W) of positive ints, got {size!r}")
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale!r}")
        self.channels, self.size, self.scale = int(channels), (int(size[0]), int(size[1])), \
            float(scale)
        self.mean = None if mean is None else [float(m) for m in mean]
        self.std = None if std is None else [float(s) for s in std]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return (self.channels, *self.size)

    def _check(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1:] != self.shape:
            raise ValueError(f"images must have shape (N, {', '.join(map(str, self.shape))}), "
                             f"got {images.shape}")
        return images.astype(np.float64) / self.scale

    def fit(self, images: np.ndarray) -> ImageNormalizer:
        """Per-channel mean and std of the (training) ``images`` (N, C, H, W)."""
        x = self._check(images)
        if len(x) == 0:
            raise ValueError("cannot fit image statistics on no images")
        self.mean = x.mean(axis=(0, 2, 3)).tolist()
        std = x.std(axis=(0, 2, 3))
        self.std = np.where(std > 1e-8, std, 1.0).tolist()  # a constant channel stays put
        return self

    def transform(self, images: np.ndarray) -> np.ndarray:
        """Normalised images as flat float32 rows (N, C·H·W), as the Trainer takes them."""
        if self.mean is None or self.std is None:
            raise RuntimeError("ImageNormalizer is not fitted; call fit() or from_dict() first")
        x = self._check(images)
        mean = np.asarray(self.mean)[None, :, None, None]
        std = np.asarray(self.std)[None, :, None, None]
        return ((x - mean) / std).reshape(len(x), -1).astype(np.float32)  # (N, C·H·W)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state."""
        return {"format": _FORMAT, "version": 1, "channels": self.channels,
                "size": list(self.size), "scale": self.scale, "mean": self.mean,
                "std": self.std}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ImageNormalizer:
        """Rebuild from :meth:`to_dict` output."""
        if d.get("format") != _FORMAT:
            raise ValueError(f"not a {_FORMAT} state (format={d.get('format')!r})")
        try:
            return cls(d["channels"], d["size"], d["scale"], d["mean"], d["std"])
        except KeyError as e:
            raise ValueError(f"image normalizer state has no {e.args[0]!r}") from None

    def __repr__(self) -> str:
        return f"ImageNormalizer(channels={self.channels}, size={self.size}, scale={self.scale})"
