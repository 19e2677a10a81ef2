"""Entry point of the demo rule: the synthetic demo cohort."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def demo_cohort(*, dicom: str | Path, clinical: str | Path, truth: str | Path, phi: str | Path,
                patients: int, retest: int, seed: int, scanners: int = 0, texture: str = "spread") -> None:
    """Generate the synthetic demo cohort: ``dicom`` (folder), ``clinical``, ``truth`` and
    ``phi`` (the planted identifiers) are written side by side into one folder. ``scanners``
    (``demo.scanners``, 2 or 3): the multi-centre demo (:mod:`radsurv.synthetic.multicentre`);
    ``texture`` (``demo.texture``): where the heterogeneity is planted (:mod:`radsurv.synthetic.grain`)."""
    from radsurv.synthetic.demo import generate_demo_cohort

    del dicom, truth, phi  # written by the generator beside the clinical table (names fixed there)
    summary = generate_demo_cohort(Path(clinical).parent, n_patients=patients, n_retest=retest, seed=seed,
                                   scanners=scanners, texture=texture)
    log.info("demo cohort written: %s", {k: v for k, v in summary.items() if not isinstance(v, (list, dict))})
