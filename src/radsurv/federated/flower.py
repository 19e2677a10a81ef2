"""The Flower transport: the same federated study in Flower's simulation and on real SuperLink / SuperNodes.

Flower (``flwr``) carries radsurv's requests and answers (plain dictionaries,
see :mod:`radsurv.federated.site`) as ``query`` messages:

* :data:`client_app` (a ``flwr.clientapp.ClientApp``) runs at each hospital
  inside its SuperNode. It builds the site from the SuperNode's node config
  (``site-name``, ``site-table``: a CSV of the site's own feature table with
  ``time`` / ``event`` and/or ``label`` columns, ``min-patients``), answers
  through the site's :class:`~radsurv.federated.privacy.SiteGuard`, and, with
  ``audit-log`` set, appends a line per sent message to that file (what left
  the hospital: kind, shapes, counts).
* :data:`server_app` (a ``flwr.serverapp.ServerApp``) runs the study at the
  SuperLink: it identifies the sites, fits the model named in the run config
  (``task = "cox"`` or ``"logistic"``, ``features``, ``penalizer`` / ``C``; or
  ``task = "study"``: the whole study of rule ``federated_study`` -- admission, fit,
  per-site / pooled / leave-one-site-out performance, Kaplan-Meier counts, QC rows --
  with ``endpoint``, ``min-patients``, ``leave-one-site-out``, ``km-times``)
  through :class:`FlowerFederation` and writes the result as JSON to
  ``result-path``.
* :func:`run_flower_simulation` runs both on one machine with Flower's
  Simulation Engine (needs ``flwr[simulation]``, i.e. Ray).
* :func:`write_flower_app` writes the small Flower App project (its
  ``pyproject.toml`` names the two apps) that ``flwr run`` submits to a
  SuperLink; see ``tests/test_federated_flower.py`` for a deployment with TLS.

A site's refusal (``PrivacyError``) travels back as a Flower error reply and
is raised again at the server with the site's wording.
"""

from __future__ import annotations

import json
import time as _time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from radsurv.federated.privacy import DEFAULT_MIN_PATIENTS, PrivacyError
from radsurv.federated.site import Site

#: Flower error code of a site's privacy refusal (application-defined codes are free to choose).
REFUSED = 4001
#: Flower error code of any other failure at a site.
FAILED = 4002


# --- codec: radsurv dictionaries <-> Flower RecordDict --------------------------------------------

def encode(payload: Mapping[str, Any]) -> RecordDict:
    """numpy arrays go into an ``ArrayRecord``, everything else into a ``ConfigRecord``."""
    arrays: dict[str, Array] = {}
    config: dict[str, Any] = {}
    for key, value in payload.items():
        if isinstance(value, np.ndarray):
            arrays[key] = Array(np.ascontiguousarray(value))
        elif isinstance(value, (np.integer, np.floating)):
            config[key] = value.item()
        elif isinstance(value, (list, tuple)):
            config[key] = list(value)
        else:
            config[key] = value
    return RecordDict({"arrays": ArrayRecord(arrays), "config": ConfigRecord(config)})


def decode(content: RecordDict) -> dict[str, Any]:
    """Inverse of :func:`encode`."""
    out: dict[str, Any] = dict(content["config"]) if "config" in content else {}
    if "arrays" in content:
        for key, arr in content["arrays"].items():
            out[key] = arr.numpy()
    return out


# --- the hospital side ------------------------------------------------------------------------------

def load_site(name: str, table: str | Path, min_patients: int = DEFAULT_MIN_PATIENTS) -> Site:
    """A :class:`Site` from its own CSV table: feature columns plus ``time``/``event`` and/or ``label``."""
    df = pd.read_csv(table)
    outcome = [c for c in ("time", "event", "label", "id", "PatientID") if c in df.columns]
    return Site(name, df.drop(columns=outcome),
                time=df["time"] if "time" in df else None, event=df["event"] if "event" in df else None,
                label=df["label"] if "label" in df else None, min_patients=min_patients)


_SITES: dict[tuple[str, str, int], Site] = {}


def _cached_site(name: str, table: str, min_patients: int) -> Site:
    key = (name, table, min_patients)
    if key not in _SITES:
        _SITES[key] = load_site(*key)
    return _SITES[key]


def _audit_line(site: str, answer: Mapping[str, Any]) -> str:
    fields = {k: (list(np.shape(v)) if np.ndim(v) else v) for k, v in answer.items()}
    return json.dumps({"time": _time.time(), "site": site, "sent": fields}, default=str)


def make_client_app(simulated_sites: Sequence[tuple[str, str | Path]] | None = None,
                    min_patients: int = DEFAULT_MIN_PATIENTS, audit_dir: str | Path | None = None) -> ClientApp:
    """The hospital's ``ClientApp``.

    In a deployment the site comes from the SuperNode's node config
    (``site-name``, ``site-table``, optional ``min-patients``, ``audit-log``).
    In the Simulation Engine, nodes only have a ``partition-id``: it indexes
    ``simulated_sites`` (``(name, table)`` pairs); with ``audit_dir``, each simulated site
    appends :func:`~radsurv.federated.privacy.audit_record` lines to ``<audit_dir>/<site>.jsonl``.
    """
    app = ClientApp()

    @app.query()
    def answer(message: Message, context: Context) -> Message:
        cfg = context.node_config
        if "site-table" in cfg:
            site = _cached_site(str(cfg["site-name"]), str(cfg["site-table"]),
                                int(cfg.get("min-patients", min_patients)))
        elif simulated_sites is not None:
            name, table = simulated_sites[int(cfg["partition-id"])]
            site = _cached_site(str(name), str(table), min_patients)
        else:
            return Message(error=Error(code=FAILED, reason="this SuperNode has no site-name / site-table node config"),
                           reply_to=message)
        request = decode(message.content)
        try:
            if request.get("kind") == "hello":
                reply = site.guard.release({"kind": "hello", "site": site.name}, noised=False)
            else:
                reply = site.handle(request)
        except PrivacyError as exc:
            return Message(error=Error(code=REFUSED, reason=str(exc)), reply_to=message)
        except (ValueError, KeyError) as exc:
            return Message(error=Error(code=FAILED, reason=f"site {site.name}: {exc}"), reply_to=message)
        audit = cfg.get("audit-log")
        if audit:
            with open(str(audit), "a", encoding="utf-8") as fh:
                fh.write(_audit_line(site.name, reply) + "\n")
        if audit_dir is not None and "site-table" not in cfg:
            from radsurv.federated.privacy import audit_record

            with open(Path(audit_dir) / f"{site.name}.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(audit_record(site.name, reply), default=float, sort_keys=True) + "\n")
        return Message(encode(reply), reply_to=message)

    return app


#: The ``ClientApp`` a SuperNode runs (``clientapp`` component of the Flower App).
client_app = make_client_app()


# --- the study side ---------------------------------------------------------------------------------

class FlowerFederation:
    """A :class:`~radsurv.federated.cox.Federation` over a Flower ``Grid`` (simulation or deployment).

    On creation it asks every connected SuperNode for its site name (waiting
    up to ``wait`` seconds for ``n_sites`` nodes when given).
    """

    def __init__(self, grid: Grid, *, n_sites: int | None = None, wait: float = 60.0,
                 timeout: float | None = 600.0) -> None:
        self.grid = grid
        self.timeout = timeout
        self.rounds = 0
        deadline = _time.monotonic() + wait
        nodes = list(grid.get_node_ids())
        while n_sites is not None and len(nodes) < n_sites and _time.monotonic() < deadline:
            _time.sleep(0.5)
            nodes = list(grid.get_node_ids())
        if n_sites is not None and len(nodes) < n_sites:
            raise RuntimeError(f"only {len(nodes)} of the study's {n_sites} sites are connected after {wait:.0f} s")
        replies = self._send({"kind": "hello"}, nodes)
        self._nodes = {str(r["site"]): node for node, r in replies.items()}

    @property
    def site_names(self) -> list[str]:
        return sorted(self._nodes)

    def _send(self, request: Mapping[str, Any], nodes: Sequence[int]) -> dict[int, dict[str, Any]]:
        self.rounds += 1
        content = encode(request)
        messages = [Message(content=content, dst_node_id=node, message_type="query", group_id=str(self.rounds))
                    for node in nodes]
        replies = list(self.grid.send_and_receive(messages, timeout=self.timeout))
        if len(replies) < len(nodes):
            raise RuntimeError(f"{len(nodes) - len(replies)} site(s) did not answer within {self.timeout} s")
        out = {}
        for reply in replies:
            if reply.has_error():
                if reply.error.code == REFUSED:
                    raise PrivacyError(reply.error.reason)
                raise RuntimeError(reply.error.reason or f"a site failed (Flower error {reply.error.code})")
            out[reply.metadata.src_node_id] = decode(reply.content)
        return out

    def ask(self, request: Mapping[str, Any], sites: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        names = list(sites) if sites is not None else self.site_names
        by_node = self._send(request, [self._nodes[s] for s in names])
        node_site = {v: k for k, v in self._nodes.items()}
        return {node_site[node]: by_node[node] for node in sorted(by_node, key=lambda n: names.index(node_site[n]))}


def run_study(fed: Any, run_config: Mapping[str, Any]) -> dict[str, Any]:
    """Fit the model a run config names through ``fed``; the JSON-ready result."""
    from radsurv.federated.cox import fit_cox
    from radsurv.federated.evaluation import federated_cindex
    from radsurv.federated.logistic import fit_logistic

    features = [f.strip() for f in str(run_config["features"]).split(",") if f.strip()]
    task = str(run_config.get("task", "cox"))
    start = _time.perf_counter()
    if task == "cox":
        res = fit_cox(fed, features, float(run_config.get("penalizer", 0.0)))
        ci = federated_cindex(fed, res)
        out = {"coef": res.coef.tolist(), "coef_std": res.coef_std.tolist(), "rounds": res.rounds,
               "c_index_pooled": ci.pooled, "c_index_per_site": ci.per_site}
    elif task == "logistic":
        lres = fit_logistic(fed, features, float(run_config.get("C", 1.0)))
        out = {"coef": lres.coef.tolist(), "coef_std": lres.coef_std.tolist(), "intercept": lres.intercept,
               "rounds": lres.rounds}
    elif task == "study":  # the whole study of rule federated_study: admission, fit, evaluation, KM
        from radsurv.federated.study import FederatedSettings, run_federated_study

        settings = replace(FederatedSettings.from_config({
            "endpoint": run_config.get("endpoint", "survival"), "penalizer": float(run_config.get("penalizer", 0.1)),
            "C": float(run_config.get("C", 1.0)), "min_patients": int(run_config.get("min-patients", 5)),
            "leave_one_site_out": bool(run_config.get("leave-one-site-out", True)),
            "km_times": [float(t) for t in str(run_config.get("km-times", "")).split(",") if t.strip()],
        }), features=features)
        res = run_federated_study(lambda noise: fed, settings, features)
        out = {"coef": res.model.coef.tolist(), "coef_std": res.model.coef_std.tolist(), "rounds": res.model.rounds,
               "sites_table": res.sites.to_dict(orient="records"),
               "performance": res.performance.astype(object).where(res.performance.notna(), None).to_dict(
                   orient="records"),
               "km": res.km.to_dict(orient="records"), "qc": res.qc, "summary": res.summary}
    else:
        raise ValueError(f"unknown task {task!r}: 'cox', 'logistic' or 'study'")
    out.update(task=task, features=features, sites=list(fed.site_names), seconds=_time.perf_counter() - start)
    return out


def make_server_app(run_config: Mapping[str, Any] | None = None,
                    results: dict[str, Any] | None = None) -> ServerApp:
    """The study's ``ServerApp``: ``run_config`` (else the run's own config) names the study.

    The result is written as JSON to ``result-path`` when the config has one,
    and stored in ``results`` (under ``"result"``) when given.
    """
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        cfg = dict(run_config) if run_config is not None else dict(context.run_config)
        n_sites = int(cfg["n-sites"]) if "n-sites" in cfg else None
        start = _time.perf_counter()
        fed = FlowerFederation(grid, n_sites=n_sites)
        result = run_study(fed, cfg)
        result["messages"] = fed.rounds
        result["wall_seconds"] = _time.perf_counter() - start
        if results is not None:
            results["result"] = result
        if "result-path" in cfg:
            Path(str(cfg["result-path"])).write_text(json.dumps(result, indent=2))

    return app


#: The ``ServerApp`` the SuperLink runs (``serverapp`` component of the Flower App).
server_app = make_server_app()


# --- running it -----------------------------------------------------------------------------------

def write_flower_app(directory: str | Path, run_config: Mapping[str, Any], name: str = "radsurv-federated") -> Path:
    """Write the Flower App project that ``flwr run`` submits (components: this module's two apps).

    ``run_config`` holds the study (``task``, ``features``, ``penalizer`` / ``C``,
    ``n-sites``, ``result-path``); it becomes ``[tool.flwr.app.config]``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lines = [f"{k} = {json.dumps(v)}" for k, v in run_config.items()]
    (directory / "pyproject.toml").write_text(
        "[build-system]\nrequires = [\"hatchling\"]\nbuild-backend = \"hatchling.build\"\n\n"
        f"[project]\nname = \"{name}\"\nversion = \"1.0.0\"\ndependencies = []\n\n"
        "[tool.hatch.build.targets.wheel]\npackages = [\".\"]\n\n"
        "[tool.flwr.app]\npublisher = \"radsurv\"\n\n"
        "[tool.flwr.app.components]\n"
        "serverapp = \"radsurv.federated.flower:server_app\"\n"
        "clientapp = \"radsurv.federated.flower:client_app\"\n\n"
        "[tool.flwr.app.config]\n" + "\n".join(lines) + "\n"
    )
    return directory


def run_flower_simulation(tables: Mapping[str, str | Path], run_config: Mapping[str, Any], *,
                          min_patients: int = DEFAULT_MIN_PATIENTS, verbose: bool = False) -> dict[str, Any]:
    """Run a study in Flower's Simulation Engine on this machine (needs ``flwr[simulation]``, i.e. Ray).

    ``tables`` maps site names to their CSV tables (one virtual SuperNode
    each); ``run_config`` is the study (``task``, ``features``, ``penalizer`` /
    ``C``). Returns the result dictionary.
    """
    from flwr.simulation import run_simulation  # imports Ray lazily

    results: dict[str, Any] = {}
    sites = [(name, str(path)) for name, path in tables.items()]
    cfg = {**run_config, "n-sites": len(sites)}
    run_simulation(server_app=make_server_app(cfg, results), client_app=make_client_app(sites, min_patients),
                   num_supernodes=len(sites),
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": 1, "include_dashboard": False}},
                   verbose_logging=verbose)
    if "result" not in results:
        raise RuntimeError("the Flower simulation ended without a result; see its log above")
    return results["result"]


def run_flower_study_simulation(data: Sequence[Any], settings: Any, features: Sequence[str],
                                workdir: str | Path | None = None) -> tuple[Any, list[str]]:
    """A whole federated study (:func:`radsurv.federated.study.run_federated_study`) in Flower's
    Simulation Engine: one virtual SuperNode per site, answering from a temporary CSV of its
    patients (deleted afterwards). ``data``: the sites' :class:`radsurv.workflow.federated.SiteData`.

    Returns the study result and the audit lines (every message each site sent, in site order).
    """
    import tempfile

    from flwr.simulation import run_simulation

    from radsurv.federated.study import run_federated_study

    features = list(features)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tables = []
        for d in data:
            table = d.features[features].reset_index(drop=True)
            if d.time is not None:
                table = table.assign(time=d.time, event=d.event)
            if d.label is not None:
                table = table.assign(label=d.label)
            path = Path(tmp) / f"{d.name}.csv"
            table.to_csv(path, index=False)
            tables.append((d.name, str(path)))
        audit_dir = Path(tmp) / "audit"
        audit_dir.mkdir()
        app = ServerApp()

        @app.main()
        def main(grid: Grid, context: Context) -> None:
            fed = FlowerFederation(grid, n_sites=len(tables))
            results["result"] = run_federated_study(lambda noise: fed, settings, features)

        run_simulation(server_app=app, client_app=make_client_app(tables, settings.min_patients, audit_dir),
                       num_supernodes=len(tables),
                       backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                       "init_args": {"num_cpus": 1, "include_dashboard": False}})
        audit = []
        for name, _ in sorted(tables):
            file = audit_dir / f"{name}.jsonl"
            lines = file.read_text().splitlines() if file.exists() else []
            for i, line in enumerate(lines):
                rec = json.loads(line)
                audit.append(json.dumps({**rec, "run": 0, "message": i}, sort_keys=True))
    if "result" not in results:
        raise RuntimeError("the Flower simulation ended without a result; see the log above")
    return results["result"], audit
