"""The wire format of the coordinator API: safetensors bodies (never pickle)."""

from __future__ import annotations

import json
from typing import Any

import numpy.typing as npt
from safetensors import SafetensorError
from safetensors.numpy import load as st_load

from tutela.errors import DataError

__all__ = ["parse_tensors"]


def parse_tensors(data: bytes) -> tuple[dict[str, npt.NDArray[Any]], dict[str, str]]:
    """Parse a safetensors body into arrays and its metadata, or raise :class:`DataError`."""
    if len(data) < 8:
        raise DataError("body is not a safetensors payload (too short)")
    try:
        header_len = int.from_bytes(data[:8], "little")
        if header_len > len(data) - 8:
            raise DataError("body is not a safetensors payload (truncated header)")
        header = json.loads(data[8 : 8 + header_len])
        arrays = st_load(bytes(data))
    except (SafetensorError, ValueError, OverflowError, UnicodeDecodeError) as exc:
        raise DataError(f"body is not a safetensors payload: {exc}") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return arrays, dict(meta) if isinstance(meta, dict) else {}
