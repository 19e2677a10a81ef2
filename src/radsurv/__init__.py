"""radsurv: reproducible radiomics survival modelling.

The library behind the Snakemake workflow. Every stage of the pipeline is a
function here, importable and testable without Snakemake.
"""

__version__ = "0.1.0"
