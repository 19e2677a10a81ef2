"""The ``radsurv`` command: ``radsurv init DICOM_DIR [CLINICAL_TABLE] [-o my_cohort.yaml]``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = """usage: radsurv COMMAND ...

commands:
  init DICOM_DIR [CLINICAL_TABLE] [-o my_cohort.yaml]
        write a starting config for a new cohort (radsurv init --help)

The demo cohort generator is radsurv-demo; the workflow runs with snakemake."""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    if args[0] == "init":
        from radsurv.init.command import main as init_main

        return init_main(args[1:])
    print(f"radsurv: unknown command {args[0]!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
