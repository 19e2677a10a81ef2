"""Entry points of the report rules: Kaplan-Meier figures, the QC table, the report's
figures and the HTML report."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from radsurv.qc import merge_qc

log = logging.getLogger(__name__)


def km_figure(*, predictions: str | Path, final_predictions: str | Path, figure: str | Path, subset: str,
              time_unit: str, model: str = "radiomics") -> None:
    """Kaplan-Meier curves of the risk groups of ``subset``.

    ``test``: held-out patients (cross-validated risk groups, or the validation
    cohort); ``train``: the development patients scored by the final model (apparent,
    optimistic; in the split design the same rows of ``predictions.tsv``).
    """
    import pandas as pd

    from radsurv.report.km import plot_km

    pred = pd.read_csv(predictions, sep="\t", dtype={"patient_id": str})
    if subset == "train" and not (pred["set"] == "train").any():
        fin = pd.read_csv(final_predictions, sep="\t", dtype={"patient_id": str})
        pred = fin[(fin["model"] == model) & (fin["set"] == "development")].assign(set="train")
        title = "Radiomic risk groups, development cohort: final model (apparent, optimistic)"
    else:
        which = {"test": "held-out patients", "train": "training patients"}.get(subset, subset)
        title = "Radiomic risk groups: " + which
    if subset == "test" and "fold" in pred.columns and pred["fold"].nunique() > 1:
        # predictions.tsv holds repeat 1 only; the report's C-index averages every repeat
        title = ("Radiomic risk groups, cross-validated: out-of-fold groups of CV repeat 1 only "
                 "(the report's C-index is the mean over all repeats)")
    plot_km(pred, Path(figure), subset=subset, title=title, time_unit=time_unit)


def qc_table(*, parts: Sequence[str | Path], table: str | Path) -> None:
    """All stages' QC rows in one table."""
    frame = merge_qc(list(parts), table)
    log.info("QC table: %d rows (%d excluded)", len(frame), int((frame["status"] == "excluded").sum()))


def report_figures(*, features: str | Path, robust: str | Path, heatmap_png: str | Path, time_unit: str,
                   performance: str | Path | None = None, calibration: str | Path | None = None,
                   coefficients: str | Path | None = None, td_auc_png: str | Path | None = None,
                   calibration_png: str | Path | None = None, forest_png: str | Path | None = None) -> None:
    """The report's figures from the result tables (:func:`radsurv.report.figures.draw_report_figures`).

    Without a survival endpoint (no ``performance``, ``calibration``, ``coefficients``: the rule
    does not request them) only the correlation heatmap of the robust features is drawn.
    """
    from radsurv.report.figures import draw_report_figures, plot_correlation_heatmap

    if performance is None or calibration is None or coefficients is None:
        from radsurv.features.table import modelling_matrix, read_features

        robust_list = [ln.strip() for ln in Path(robust).read_text().splitlines() if ln.strip()]
        plot_correlation_heatmap(modelling_matrix(read_features(features)), robust_list, [], heatmap_png)
        return
    assert td_auc_png is not None and calibration_png is not None and forest_png is not None
    draw_report_figures(performance, calibration, coefficients, features, robust, td_auc_png, calibration_png,
                        forest_png, heatmap_png, time_unit)


def write_report(*, report: str | Path, config: Mapping[str, Any], **files: Any) -> None:
    """The HTML report (:func:`radsurv.report.html.write_report`) from the result ``files``
    (the rule's named inputs: see that function for the required and optional ones)."""
    from radsurv.report.html import write_report as write_html

    write_html(dict(files), dict(config), report)
