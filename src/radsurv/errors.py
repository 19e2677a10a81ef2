"""Errors that mark one case (patient or scan) as unprocessable.

A :class:`CaseError` never stops the cohort: the rule adapter catches it and
records the case in the QC table with its stage and reason.
"""

from __future__ import annotations

from radsurv.privacy import scrub_uids


class CaseError(Exception):
    """A single case cannot be processed at ``stage`` for ``reason``.

    ``reason`` must be written for a physicist: it names the file or series
    and the problem, and never contains patient-identifying DICOM values (UIDs,
    also those inside a wrapped library's message, are replaced by pseudonyms here).
    """

    def __init__(self, stage: str, reason: str) -> None:
        reason = scrub_uids(reason)
        super().__init__(f"[{stage}] {reason}")
        self.stage = stage
        self.reason = reason
