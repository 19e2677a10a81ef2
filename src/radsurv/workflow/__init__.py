"""The workflow's entry points: one function per Snakemake rule, with the rule's name.

Each rule's adapter (``workflow/scripts/<rule>.py``) passes the rule's named input,
output and params as keyword arguments to the function of the same name in the
module of its stage (:mod:`.demo`, :mod:`.ingest`, :mod:`.features`, :mod:`.robustness`,
:mod:`.modelling`, :mod:`.report`), through :func:`radsurv.logutil.run_rule`. Entry points
read files, call the stage library and write files; nothing else. :mod:`.rules` holds
the light helpers the Snakefile uses while it builds the DAG (no heavy imports).
"""
