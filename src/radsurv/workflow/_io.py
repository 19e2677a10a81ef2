"""Small file helpers shared by the entry points."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def write_tsv(frame: pd.DataFrame, path: str | Path) -> None:
    """``frame`` as a TSV without its index (the folder is created)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, sep="\t", index=False)


def json_safe(value: Any) -> Any:
    """Plain JSON: NaN/inf become null (``json`` would write the invalid token NaN)."""
    import numpy as np

    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    return value


def write_json(value: Any, path: str | Path, **kwargs: Any) -> None:
    """``value`` (made :func:`json_safe`) as JSON; ``kwargs`` go to :func:`json.dumps`."""
    Path(path).write_text(json.dumps(json_safe(value), **kwargs))
