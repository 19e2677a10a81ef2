"""Split a single-centre table into per-site tables, for federated tutorials and consortium test runs.

A real federated study starts from each hospital's own tables. To try one on a public
cohort, this helper writes, per site, a feature table (``patient_id`` + feature columns)
and a clinical table (the cohort's own outcome columns) into a folder under ``results/``,
which ``federated.sites`` then lists. Two recipes reproduce the studies of issue #20 from
the reference data in ``../shared/data``::

    python -m radsurv.federated.split lung1 ../shared/data results/federated_sites/lung1
    python -m radsurv.federated.split owkin ../shared/data results/federated_sites/owkin

* ``lung1``: Lung1 (NSCLC-Radiomics) pyradiomics features of each patient's ``_000000_GTV-1_mask``
  row with an overall-survival outcome, sorted by PatientID and dealt round-robin to
  ``site1``, ``site2``, ``site3`` (deterministic; 144 patients, 48 per site);
* ``owkin``: owkin-nsclc training set (radiomics with three header rows), one site per
  ``SourceDataset`` value (``l1``, ``l2``).

The pipeline never needs these data; the helper is run once, by hand, before the study.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd


def write_sites(features: pd.DataFrame, clinical: pd.DataFrame, site_of: Mapping[str, str],
                out_dir: str | Path, id_column: str) -> dict[str, tuple[Path, Path]]:
    """Write ``<site>_features.csv`` (``patient_id`` + features) and ``<site>_clinical.csv`` per site.

    ``features``: indexed by patient id; ``clinical``: with the id in ``id_column``;
    ``site_of``: patient id -> site (patients without a site are not written).
    Returns site -> (features file, clinical file).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sites = pd.Series(site_of, dtype=str)
    written = {}
    for site in sorted(sites.unique()):
        ids = sorted(sites.index[sites == site])
        f = features.loc[ids].rename_axis("patient_id").reset_index()
        c = clinical[clinical[id_column].astype(str).isin(ids)]
        fp, cp = out / f"{site}_features.csv", out / f"{site}_clinical.csv"
        f.to_csv(fp, index=False)
        c.to_csv(cp, index=False)
        written[site] = (fp, cp)
    return written


def split_lung1(shared: str | Path, out_dir: str | Path, n_sites: int = 3) -> dict[str, tuple[Path, Path]]:
    """Lung1 into ``n_sites`` round-robin sites (see the module docstring)."""
    root = Path(shared) / "lung1"
    feats = pd.read_csv(root / "lung1_pyradiomics_features.csv", low_memory=False)
    feats = feats[feats["Patient"].astype(str).str.endswith("_000000_GTV-1_mask")]
    feats.index = pd.Index(feats["Patient"].str[:9], name="patient_id")
    feats = feats.select_dtypes("number").drop(columns=[c for c in feats.columns if str(c).startswith("Unnamed")],
                                               errors="ignore")
    clin = pd.read_csv(root / "lung1_clinical_v3.csv")
    outcome = clin.dropna(subset=["Survival.time", "deadstatus.event"])
    ids = sorted(set(feats.index) & set(outcome["PatientID"].astype(str)))
    return write_sites(feats, clin, {pid: f"site{i % n_sites + 1}" for i, pid in enumerate(ids)}, out_dir,
                       "PatientID")


def split_owkin(shared: str | Path, out_dir: str | Path) -> dict[str, tuple[Path, Path]]:
    """owkin-nsclc into one site per ``SourceDataset`` (see the module docstring)."""
    root = Path(shared) / "owkin-nsclc"
    rad = pd.read_csv(root / "train_radiomics.csv", skiprows=[0, 2], index_col=0)
    rad.index = rad.index.astype(int).astype(str).rename("patient_id")
    out = pd.read_csv(root / "train_outcome.csv")
    clin = pd.read_csv(root / "train_clinical.csv")
    table = clin.merge(out, on="PatientID").dropna(subset=["SurvivalTime", "Event", "SourceDataset"])
    table["PatientID"] = table["PatientID"].astype(int).astype(str)
    ids = sorted(set(rad.index) & set(table["PatientID"]))
    site = table.set_index("PatientID")["SourceDataset"].astype(str)
    return write_sites(rad.astype(float), table, {pid: site[pid] for pid in ids}, out_dir, "PatientID")


RECIPES = {"lung1": split_lung1, "owkin": split_owkin}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m radsurv.federated.split {lung1,owkin} SHARED_DATA OUT_DIR``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", choices=sorted(RECIPES))
    parser.add_argument("shared", help="the reference data folder (../shared/data)")
    parser.add_argument("out_dir", help="where the per-site tables go (e.g. results/federated_sites/lung1)")
    args = parser.parse_args(argv)
    for site, (f, c) in RECIPES[args.recipe](args.shared, args.out_dir).items():
        print(f"{site}: {f} {c}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
