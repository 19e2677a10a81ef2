"""Benchmark: federated Cox on 3 sites x 500 patients x 20 features (issue #20).

Not a pytest test (no ``test_`` prefix); run it directly::

    python tests/benchmarks/bench_federated.py [--modes local,simulation,localhost] [--seed 0]

Data: seeded synthetic cohort, 20 correlated features, exponential survival times
depending on 5 of them, ~30 % censoring, each site with its own baseline hazard.
Reports, per transport, the Newton-Raphson rounds to convergence (step norm < 1e-10),
the number of federated requests (incl. the site roll call and the C-index), the wall time
(``wall_s``: start-up of Ray / the Flower processes included), the time of the study itself
once the sites are connected (``study_s``: fit + C-index), and the largest coefficient
difference to lifelines' ``CoxPHFitter(strata=site)`` on the pooled data (same penaliser):

* ``local``: radsurv's in-process federation (the arithmetic alone);
* ``simulation``: Flower's Simulation Engine (Ray) on this machine;
* ``localhost``: one ``flower-superlink`` and three ``flower-supernode`` processes with TLS
  (a ClientApp process per message, as Flower 1.41 runs them).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

N_SITES, N_PATIENTS, N_FEATURES, PENALIZER = 3, 500, 20, 0.01


def cohort(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cov = 0.3 ** np.abs(np.subtract.outer(np.arange(N_FEATURES), np.arange(N_FEATURES)))
    beta = np.zeros(N_FEATURES)
    beta[:5] = [0.6, -0.4, 0.3, 0.2, -0.2]
    frames = []
    for s in range(N_SITES):
        x = rng.multivariate_normal(np.full(N_FEATURES, s * 0.2), cov, size=N_PATIENTS)
        t = rng.exponential((8.0 + 6 * s) * np.exp(-x @ beta))
        c = rng.exponential(30.0, size=N_PATIENTS)
        df = pd.DataFrame(x, columns=[f"f{j:02d}" for j in range(N_FEATURES)])
        df["time"] = np.round(np.minimum(t, c), 2)
        df["event"] = (t <= c).astype(int)
        df["site"] = f"site{s + 1}"
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", default="local,simulation,localhost")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from lifelines import CoxPHFitter

    from radsurv.federated import LocalFederation, Site, fit_cox

    df = cohort(args.seed)
    feats = [c for c in df.columns if c.startswith("f")]
    t0 = time.perf_counter()
    cph = CoxPHFitter(penalizer=PENALIZER).fit(df, "time", "event", strata=["site"],
                                              fit_options={"precision": 1e-14, "r_precision": 0.0, "max_steps": 500})
    central_s = time.perf_counter() - t0
    ref = cph.params_[feats].to_numpy()
    print(f"cohort: {N_SITES} sites x {N_PATIENTS} patients x {N_FEATURES} features, "
          f"{int(df['event'].sum())} events; lifelines pooled stratified fit {central_s:.2f} s")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tables = {}
        for name, part in df.groupby("site"):
            tables[name] = tmp / f"{name}.csv"
            part[[*feats, "time", "event"]].to_csv(tables[name], index=False)
        cfg = {"task": "cox", "features": ",".join(feats), "penalizer": PENALIZER}
        for mode in args.modes.split(","):
            start = time.perf_counter()
            if mode == "local":
                fed = LocalFederation([Site(n, p[feats], time=p["time"], event=p["event"])
                                       for n, p in df.groupby("site")])
                res = fit_cox(fed, feats, PENALIZER)
                coef, rounds, requests, fit_s = res.coef, res.rounds, fed.requests, res.seconds
            elif mode == "simulation":
                from radsurv.federated.flower import run_flower_simulation
                out = run_flower_simulation(tables, cfg)
                coef, rounds, requests, fit_s = np.array(out["coef"]), out["rounds"], out["messages"], out["seconds"]
            elif mode == "localhost":
                from federated_deploy import LocalDeployment

                from radsurv.federated.flower import write_flower_app
                result = tmp / "result.json"
                app = write_flower_app(tmp / "app", {**cfg, "n-sites": N_SITES, "result-path": str(result)})
                with LocalDeployment(tmp / "deploy", tables) as dep:
                    run = dep.run(app, timeout=3000)
                    if run.returncode != 0 or not result.exists():
                        raise SystemExit(f"localhost run failed:\n{run.stderr[-2000:]}\n{dep.log_tail()}")
                out = json.loads(result.read_text())
                coef, rounds, requests, fit_s = np.array(out["coef"]), out["rounds"], out["messages"], out["seconds"]
            else:
                raise SystemExit(f"unknown mode {mode}")
            wall = time.perf_counter() - start
            rows.append({"transport": mode, "rounds": rounds, "requests": requests, "wall_s": round(wall, 2),
                         "study_s": round(float(fit_s), 2),
                         "max_abs_diff_vs_lifelines": float(np.abs(coef - ref).max())})
            print(rows[-1], flush=True)
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
