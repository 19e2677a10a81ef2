"""Issue #20 in the workflow: the ``federated`` config block, rule ``federated_study`` and its outputs.

One real ``snakemake federated`` run on generated sites (three of 40-60 patients and one of 3
patients, which must refuse and be named in the QC table) is shared by the survival checks;
the binary endpoint and differential privacy call the rule's entry point directly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import run_workflow, snakemake_run

from radsurv.federated.study import FederatedSettings
from radsurv.schema import load_schema, problems
from radsurv.workflow.federated import FEDERATED_OUTPUTS, federated_files, federated_study
from radsurv.workflow.rules import federated_enabled, federated_inputs

REPO = Path(__file__).resolve().parents[1]
FEATURES = ["f1", "f2", "f3"]
SIZES = {"north": 60, "south": 45, "east": 50, "tiny": 3}
K = 5


def _write_sites(root: Path, binary: bool = False, sizes: dict[str, int] = SIZES, seed: int = 3) -> list[dict]:
    """Per site a feature table (patient_id, f1..f4) and a clinical table (pid, months, dead | hpv)."""
    rng = np.random.default_rng(seed)
    sites, start = [], 0
    for s, (name, n) in enumerate(sizes.items()):
        x = rng.normal(size=(n, 4)) * [1.0, 2.0, 0.5, 3.0] + [0.0, 5.0, -1.0, 10.0]
        ids = [f"PT{start + i:04d}" for i in range(n)]
        start += n
        lp = 0.8 * x[:, 0] - 0.3 * x[:, 1] + 0.9 * x[:, 2]
        feats = pd.DataFrame(x, columns=["f1", "f2", "f3", "f4"]).assign(patient_id=ids)
        if binary:
            clin = pd.DataFrame({"pid": ids, "hpv": np.where(rng.random(n) < 1 / (1 + np.exp(-lp + 0.5)), "pos",
                                                              "neg")})
        else:
            t_event = rng.exponential(6 * np.exp(-lp) * (1 + 0.3 * s))  # each site its own baseline hazard
            t_cens = rng.uniform(10, 100, n)
            clin = pd.DataFrame({"pid": ids, "months": np.round(np.minimum(t_event, t_cens), 2),
                                 "dead": (t_event <= t_cens).astype(int)})
        fp, cp = root / f"{name}_features.csv", root / f"{name}_clinical.csv"
        feats[["patient_id", "f1", "f2", "f3", "f4"]].to_csv(fp, index=False)
        clin.to_csv(cp, index=False)
        sites.append({"name": name, "features_table": str(fp), "clinical_table": str(cp)})
    return sites


def _config(sites: list[dict], **federated) -> dict:
    return {"seed": 11, "site": "lung_ct",
            "cohort": {"name": "generated federation", "columns": {"id": "pid", "time": "months", "event": "dead"},
                       "time_unit": "months", "dicom_dir": ".", "roi_pattern": "^GTV"},
            "federated": {"enabled": True, "sites": sites, "features": "first", "n_features": 3, "penalizer": 0.05,
                          "min_patients": K, **federated}}


def _validated(cfg: dict) -> dict:
    """``cfg`` with the schema's defaults filled in (as the workflow's validate does)."""
    from snakemake.utils import validate

    validate(cfg, schema=str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return cfg


def _pooled(root: Path, names: list[str]) -> pd.DataFrame:
    parts = []
    for name in names:
        f = pd.read_csv(root / f"{name}_features.csv")
        c = pd.read_csv(root / f"{name}_clinical.csv").rename(columns={"pid": "patient_id"})
        parts.append(f.merge(c, on="patient_id").assign(site=name))
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def survival_run(tmp_path_factory) -> Path:
    """``snakemake federated`` on the generated survival sites; the working folder."""
    work = tmp_path_factory.mktemp("federated_run")
    sites = _write_sites(work)
    (work / "study.yaml").write_text(yaml.safe_dump(_config(sites)))
    run_workflow(work, "federated", "--configfile", "study.yaml", "--cores", "1", timeout=600)
    return work


def test_rule_writes_every_output(survival_run):
    out = survival_run / "results" / "federated"
    for name in FEDERATED_OUTPUTS.values():
        assert (out / name).is_file(), name
    assert (out / "km.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    km = pd.read_csv(out / "km.tsv", sep="\t")
    assert set(km["group"]) == {"below the mean risk", "above the mean risk"}
    cells = km[["at_risk", "events"]].to_numpy()
    assert ((cells == 0) | (cells >= K)).all()  # every shared cell: 0 or at least k patients
    assert km.groupby("group")["survival"].apply(lambda s: s.is_monotonic_decreasing).all()


def test_federated_cox_equals_lifelines_stratified_by_site(survival_run):
    from lifelines import CoxPHFitter
    from sksurv.metrics import concordance_index_censored

    out = survival_run / "results" / "federated"
    df = _pooled(survival_run, ["north", "south", "east"])  # tiny refused: not in the model
    cph = CoxPHFitter(penalizer=0.05).fit(df[[*FEATURES, "months", "dead", "site"]], "months", "dead",
                                          strata=["site"],
                                          fit_options={"precision": 1e-14, "r_precision": 0.0, "max_steps": 500})
    coefs = pd.read_csv(out / "coefficients.tsv", sep="\t").set_index("feature")
    assert list(coefs.index) == FEATURES
    np.testing.assert_allclose(coefs["coef"], cph.params_[FEATURES], atol=1e-6)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["central_check"]["max_abs_coef_difference"] < 1e-6
    assert summary["sites_in_study"] == ["north", "south", "east"]
    # the pooled C over within-site pairs equals the central stratified C of the same model
    risk = df[FEATURES].to_numpy() @ cph.params_[FEATURES].to_numpy()
    num = den = 0.0
    perf = pd.read_csv(out / "performance.tsv", sep="\t")
    for name, part in df.groupby("site"):
        _, c, d, t, _ = concordance_index_censored(part["dead"].astype(bool).to_numpy(), part["months"].to_numpy(),
                                                   risk[part.index])
        num, den = num + c + 0.5 * t, den + c + d + t
        row = perf[(perf["scope"] == "apparent") & (perf["site"] == name)]
        assert row["estimate"].iloc[0] == pytest.approx((c + 0.5 * t) / (c + d + t), abs=1e-9)
    pooled = perf[(perf["scope"] == "apparent") & perf["site"].str.startswith("pooled")]["estimate"].iloc[0]
    assert pooled == pytest.approx(num / den, abs=1e-9)
    loso = perf[perf["scope"] == "leave_one_site_out"]
    assert set(loso["site"]) == {"north", "south", "east", "pooled (within-site pairs)"}
    assert loso["estimate"].between(0, 1).all()


def test_site_below_k_refuses_and_the_qc_row_names_it(survival_run):
    out = survival_run / "results" / "federated"
    qc = pd.read_csv(out / "qc.tsv", sep="\t", dtype=str, keep_default_na=False)
    tiny = qc[qc["stage"] == "federated:tiny"]
    assert len(tiny) == 1 and tiny["status"].iloc[0] == "excluded"
    assert "fewer than the 5" in tiny["reason"].iloc[0] and "left out of the study" in tiny["reason"].iloc[0]
    sites = pd.read_csv(out / "sites.tsv", sep="\t", dtype=str, keep_default_na=False).set_index("site")
    assert sites.loc["tiny", "n"] == "< 5" and sites.loc["north", "n"] == "60"


def test_every_audited_message_is_an_aggregate_of_at_least_k_patients(survival_run):
    out = survival_run / "results" / "federated"
    records = [json.loads(line) for line in (out / "audit.jsonl").read_text().splitlines()]
    assert len(records) > 20
    sizes = {"north": 60, "south": 45, "east": 50}
    # the tiny site sent nothing: its refusal is not a message
    assert {r["site"] for r in records} == set(sizes)
    kinds = {r["fields"]["kind"] for r in records}
    assert {"counts", "moments", "cox", "concordance", "km_grid", "km"} <= kinds
    for r in records:
        n_site = sizes[r["site"]]
        for key, value in r["fields"].items():
            if isinstance(value, dict):  # an array or scalar aggregate: its shape only
                assert n_site not in value["shape"], (r, key)
                assert sum(sizes.values()) not in value["shape"], (r, key)
            elif key in ("n", "n_events", "n_positive"):
                assert value >= K, (r, key)
            else:
                assert key in ("kind", "concordant", "discordant", "tied_risk", "n_pairs"), key
    # no patient identifier anywhere in the outputs or the log
    texts = [p.read_text(errors="ignore") for p in out.iterdir() if p.suffix != ".png"]
    texts.append((survival_run / "results" / "logs" / "federated_study.log").read_text())
    assert not any("PT0" in t for t in texts)


def test_report_section_shows_sites_privacy_and_coefficients(survival_run):
    from radsurv.report.federated import federated_section

    out = survival_run / "results" / "federated"
    files = federated_files(out)
    inputs = {"federated_summary": files["summary"], "federated_coefficients": files["coefficients"],
              "federated_performance": files["performance"], "federated_sites": files["sites"],
              "federated_km_png": files["km_png"], "federated_dp": files["dp_effect"],
              "federated_audit": files["audit"], "federated_qc": files["qc"]}
    html = "\n".join(federated_section(inputs, {"federated": {"min_patients": K}}, out))
    assert '<h2 id="federated">Federated study</h2>' in html
    assert "&lt; 5" in html and "k = 5" in html and "data:image/png;base64" in html
    assert "leave_one_site_out" in html and "No patient-level value left any site" in html
    assert federated_section({}, {}, out) == []


def test_binary_endpoint_equals_scikit_learn(tmp_path):
    from sklearn.linear_model import LogisticRegression

    sites = _write_sites(tmp_path, binary=True, sizes={"a": 70, "b": 60, "c": 80})
    cfg = _validated(_config(sites, endpoint="binary", label="hpv", positive_class="pos", C=0.5))
    files = federated_files(tmp_path / "out")
    federated_study(federated=cfg["federated"], modelling=cfg["modelling"], robustness=cfg["robustness"],
                    columns=cfg["cohort"]["columns"], seed=cfg["seed"], **files)
    df = _pooled(tmp_path, ["a", "b", "c"])
    x = df[FEATURES].to_numpy()
    z = (x - x.mean(axis=0)) / x.std(axis=0, ddof=1)
    sk = LogisticRegression(C=0.5, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(z, df["hpv"] == "pos")
    coefs = pd.read_csv(files["coefficients"], sep="\t").set_index("feature")
    np.testing.assert_allclose(coefs.loc[FEATURES, "coef_std"], sk.coef_[0], atol=1e-6)
    assert coefs.loc["(intercept)", "coef_std"] == pytest.approx(sk.intercept_[0], abs=1e-6)
    perf = pd.read_csv(files["performance"], sep="\t")
    assert set(perf["metric"]) == {"auc"}
    assert json.loads(files["summary"].read_text())["central_check"]["max_abs_coef_difference"] < 1e-6


def _run_dp(tmp_path: Path, sites: list[dict], seed: int, name: str) -> dict[str, Path]:
    cfg = _validated(_config(sites, differential_privacy={"enabled": True, "sigma": 0.5, "repeats": 3},
                             leave_one_site_out=False))
    cfg["seed"] = seed
    files = federated_files(tmp_path / name)
    federated_study(federated=cfg["federated"], modelling=cfg["modelling"], robustness=cfg["robustness"],
                    columns=cfg["cohort"]["columns"], seed=cfg["seed"], **files)
    return files


def test_differential_privacy_changes_coefficients_by_a_reported_amount_and_is_deterministic(tmp_path):
    sites = _write_sites(tmp_path, sizes={"a": 50, "b": 50, "c": 50})
    one, two, other = (_run_dp(tmp_path, sites, 11, "one"), _run_dp(tmp_path, sites, 11, "two"),
                       _run_dp(tmp_path, sites, 12, "other"))
    for key in ("coefficients", "dp_effect", "performance", "audit"):
        assert one[key].read_bytes() == two[key].read_bytes(), key  # same seed, same outputs
    dp = json.loads(one["dp_effect"].read_text())
    assert dp["enabled"] and dp["sigma"] == 0.5 and dp["repeats"] == 3 and dp["mean_abs_change"] > 0
    c1 = pd.read_csv(one["coefficients"], sep="\t")
    c3 = pd.read_csv(other["coefficients"], sep="\t")
    assert not np.allclose(c1["coef"], c3["coef"])  # another seed, other noise
    # the reported model is the first of the measured noise draws: its distance from the exact
    # (= central) fit is positive and within the reported largest change
    exact_sd = _pooled(tmp_path, ["a", "b", "c"])[FEATURES].std(ddof=1).to_numpy()
    diff = np.abs(c1["coef_std"] - c1["central_coef"] * exact_sd)
    assert 0 < diff.max() <= dp["max_abs_change"] + 1e-6
    summary = json.loads(one["summary"].read_text())
    assert summary["differential_privacy"] and summary["central_check"]["max_abs_coef_difference"] < 1e-6


def test_federated_config_is_validated_with_clear_messages():
    schema = load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")
    cfg = _config([{"name": "a", "features_table": "a.csv", "clinical_table": "b.csv"}], transport="deployment")
    msgs = problems(cfg, schema)
    assert any("federated -> transport" in m and "'inprocess'" in m for m in msgs), msgs
    cfg = _config([{"name": "bad name!", "features_table": "a.csv", "clinical_table": "b.csv"}], min_patients=0)
    msgs = problems(cfg, schema)
    assert any("min_patients" in m for m in msgs) and any("sites -> 0 -> name" in m for m in msgs), msgs
    with pytest.raises(ValueError, match="sigma.*epsilon"):
        FederatedSettings.from_config({"differential_privacy": {"enabled": True}})
    with pytest.raises(ValueError, match="multiclass"):
        FederatedSettings.from_config({}, {"endpoint": "multiclass"})
    s = FederatedSettings.from_config({"differential_privacy": {"enabled": True, "epsilon": 0.5, "delta": 1e-5,
                                                                "sensitivity": 1.0}}, {"horizons": [12, 24]})
    assert s.dp_sigma == pytest.approx(np.sqrt(2 * np.log(1.25e5)) / 0.5)
    assert s.km_times[-1] == pytest.approx(72.0) and len(s.km_times) == 30


def test_rule_inputs_and_target_follow_the_config():
    cfg = {"federated": {"enabled": True, "sites": [{"name": "a", "features_table": "fa", "clinical_table": "ca"},
                                                    {"name": "b", "features_table": "fb", "clinical_table": "cb"}]}}
    assert federated_inputs(cfg) == {"features_0": "fa", "clinical_0": "ca", "features_1": "fb",
                                     "clinical_1": "cb"}
    assert federated_enabled(cfg) and not federated_enabled({}) and not federated_enabled({"federated": {}})


@pytest.mark.e2e
def test_flower_simulation_transport_gives_the_in_process_study(tmp_path):
    """``transport: simulation`` (Flower's Simulation Engine, Ray): the same coefficients, performance
    and Kaplan-Meier counts as in process, and an audit of the same kinds of messages."""
    pytest.importorskip("ray")
    sites = _write_sites(tmp_path, sizes={"a": 50, "b": 50, "c": 50})
    outs = {}
    for transport in ("inprocess", "simulation"):
        cfg = _validated(_config(sites, transport=transport, leave_one_site_out=False))
        outs[transport] = files = federated_files(tmp_path / transport)
        federated_study(federated=cfg["federated"], modelling=cfg["modelling"], robustness=cfg["robustness"],
                        columns=cfg["cohort"]["columns"], seed=cfg["seed"], **files)
    a, b = (pd.read_csv(outs[t]["coefficients"], sep="\t") for t in ("inprocess", "simulation"))
    np.testing.assert_allclose(a["coef"], b["coef"], atol=1e-10)
    pa, pb = (pd.read_csv(outs[t]["performance"], sep="\t").sort_values("site") for t in ("inprocess", "simulation"))
    np.testing.assert_allclose(pa["estimate"], pb["estimate"], atol=1e-12)
    kinds = [{json.loads(x)["fields"]["kind"] for x in outs[t]["audit"].read_text().splitlines()}
             for t in ("inprocess", "simulation")]
    assert kinds[0] <= kinds[1] and "hello" in kinds[1]


def test_robust_features_from_the_federated_test_retest_icc(tmp_path):
    """``features: robust`` on the pipeline's own features.tsv per site (retest sessions): the ICC
    from per-site sums equals the central ICC of the pooled retest pairs with the patients nested
    in their site (``robustness.within_batch``, the default; crossed when it is off), and only
    the reproducible features enter the model."""
    from radsurv.robustness.icc import icc as central_icc

    rng = np.random.default_rng(5)
    sites, pairs, start = [], [], 0
    for name, n, n_retest in (("a", 50, 12), ("b", 45, 9), ("c", 55, 10)):
        x = rng.normal(size=(n, 4))
        retest = x[:n_retest] + rng.normal(size=(n_retest, 4)) * [0.05, 0.1, 1.5, 2.0]  # f1, f2 reproducible
        ids = [f"PT{start + i:04d}" for i in range(n)]
        start += n
        rows = [{"scan_id": f"{p}_S1", "patient_id": p, "session": 1, **dict(zip(["f1", "f2", "f3", "f4"], v))}
                for p, v in zip(ids, x)]
        rows += [{"scan_id": f"{p}_S2", "patient_id": p, "session": 2, **dict(zip(["f1", "f2", "f3", "f4"], v))}
                 for p, v in zip(ids, retest)]
        fp = tmp_path / f"{name}_features.tsv"
        pd.DataFrame(rows).to_csv(fp, sep="\t", index=False)
        lp = 0.7 * x[:, 0] - 0.5 * x[:, 1]
        t_event, t_cens = rng.exponential(10 * np.exp(-lp)), rng.uniform(5, 60, n)
        cp = tmp_path / f"{name}_clinical.csv"
        pd.DataFrame({"pid": ids, "months": np.minimum(t_event, t_cens), "dead": (t_event <= t_cens).astype(int)}
                     ).to_csv(cp, index=False)
        sites.append({"name": name, "features_table": str(fp), "clinical_table": str(cp)})
        pairs.append(np.stack([x[:n_retest].T, retest.T], axis=2))
    cfg = _validated(_config(sites, features="robust", n_features=3, leave_one_site_out=False))
    cfg["robustness"].update(icc_form="ICC(2,1)", threshold=0.75, use_lower_bound=True)
    files = federated_files(tmp_path / "out")
    federated_study(federated=cfg["federated"], modelling=cfg["modelling"], robustness=cfg["robustness"],
                    columns=cfg["cohort"]["columns"], seed=cfg["seed"], **files)
    summary = json.loads(files["summary"].read_text())
    icc_table = pd.DataFrame(summary["robust_icc"]).set_index("feature")
    site_of = np.repeat(["a", "b", "c"], [12, 9, 10])
    central = central_icc(np.concatenate(pairs, axis=1), "ICC(2,1)", groups=site_of)
    np.testing.assert_allclose(icc_table.loc[["f1", "f2", "f3", "f4"], "icc"], central.icc, rtol=1e-10)
    np.testing.assert_allclose(icc_table.loc[["f1", "f2", "f3", "f4"], "ci_low"], central.ci_low, rtol=1e-10)
    assert summary["features"] == ["f1", "f2"]
    cfg["robustness"]["within_batch"] = False
    crossed_files = federated_files(tmp_path / "crossed")
    federated_study(federated=cfg["federated"], modelling=cfg["modelling"], robustness=cfg["robustness"],
                    columns=cfg["cohort"]["columns"], seed=cfg["seed"], **crossed_files)
    crossed = pd.DataFrame(json.loads(crossed_files["summary"].read_text())["robust_icc"]).set_index("feature")
    np.testing.assert_allclose(crossed.loc[["f1", "f2", "f3", "f4"], "icc"],
                               central_icc(np.concatenate(pairs, axis=1), "ICC(2,1)").icc, rtol=1e-10)
    assert pd.read_csv(files["coefficients"], sep="\t")["feature"].tolist() == ["f1", "f2"]
    audit = [json.loads(x) for x in files["audit"].read_text().splitlines()]
    assert {"icc_sums", "icc_squares"} <= {r["fields"]["kind"] for r in audit}


def test_all_includes_the_federated_study_and_its_report_section_only_when_enabled(tmp_path):
    sites = _write_sites(tmp_path, sizes={"a": 20, "b": 20})
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    (tmp_path / "off.yaml").write_text(yaml.safe_dump(cfg))
    cfg["federated"] = {"enabled": True, "sites": sites}
    (tmp_path / "on.yaml").write_text(yaml.safe_dump(cfg))
    on = snakemake_run(tmp_path, "-n", "--cores", "1", "--configfile", "on.yaml", timeout=300)
    assert on.returncode == 0, on.stderr[-3000:]
    assert "federated_study" in on.stdout and "results/federated/summary.json" in on.stdout
    off = snakemake_run(tmp_path, "-n", "--cores", "1", "--configfile", "off.yaml", timeout=300)
    assert off.returncode == 0, off.stderr[-3000:]
    assert "federated_study" not in off.stdout and "write_report" in off.stdout


@pytest.mark.e2e
def test_the_html_report_holds_the_federated_section_when_enabled(tiny_report_inputs, survival_run, tmp_path):
    """The whole report (radsurv.report.html.write_report) of the tiny demo run with the federated
    study's files as write_report gets them when federated.enabled: the section is there, between
    the risk groups and the checklist; without them it is not."""
    from radsurv.report.html import write_report

    inputs, config = tiny_report_inputs
    write_report(inputs, config, tmp_path / "plain.html")
    assert 'id="federated"' not in (tmp_path / "plain.html").read_text()
    files = federated_files(survival_run / "results" / "federated")
    fed_inputs = {f"federated_{k}": str(files[v]) for k, v in {
        "summary": "summary", "coefficients": "coefficients", "performance": "performance", "sites": "sites",
        "km_png": "km_png", "dp": "dp_effect", "audit": "audit", "qc": "qc"}.items()}
    config["federated"] = {"enabled": True, "min_patients": K}
    write_report({**inputs, **fed_inputs}, config, tmp_path / "report.html")
    html = (tmp_path / "report.html").read_text()
    assert html.index('id="km"') < html.index('id="federated"') < html.index('id="checklist"')
    assert "Harrell&#x27;s C per site" in html or "Harrell's C per site" in html


def test_the_deployment_server_app_runs_the_same_study(tmp_path):
    """``task = "study"`` of the Flower ServerApp (what a SuperLink runs in a deployment), driven
    here through in-process sites: the coefficients and performance of rule federated_study."""
    from radsurv.federated.flower import run_study
    from radsurv.federated.site import LocalFederation, Site

    sites = _write_sites(tmp_path, sizes={"a": 50, "b": 50, "c": 50})
    cfg = _validated(_config(sites, penalizer=0.1, km_times=[10, 20, 40, 60]))
    files = federated_files(tmp_path / "out")
    federated_study(federated=cfg["federated"], modelling=cfg["modelling"], robustness=cfg["robustness"],
                    columns=cfg["cohort"]["columns"], seed=cfg["seed"], **files)
    df = _pooled(tmp_path, ["a", "b", "c"])
    fed = LocalFederation([Site(n, p[FEATURES], time=p["months"], event=p["dead"]) for n, p in df.groupby("site")])
    out = run_study(fed, {"task": "study", "features": ",".join(FEATURES), "penalizer": 0.1,
                          "km-times": "10,20,40,60"})
    coefs = pd.read_csv(files["coefficients"], sep="\t")
    np.testing.assert_allclose(out["coef"], coefs["coef"], atol=1e-12)
    perf = pd.read_csv(files["performance"], sep="\t")
    np.testing.assert_allclose([r["estimate"] for r in out["performance"]], perf["estimate"], atol=1e-12)
    km, rule_km = pd.DataFrame(out["km"]), pd.read_csv(files["km"], sep="\t")
    assert len(km) >= 2 and list(km["group"]) == list(rule_km["group"])
    np.testing.assert_allclose(km[["time", "at_risk", "events", "survival"]].to_numpy(float),
                               rule_km[["time", "at_risk", "events", "survival"]].to_numpy(float), atol=1e-12)
