"""Helpers to run a federated study on real Flower processes on localhost (tests and benchmark).

Self-signed TLS material is generated with ``cryptography``; one ``flower-superlink`` and one
``flower-supernode`` per site are started as separate processes; the study is submitted with
``flwr run``. Processes are stopped by their own ids.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_tls(directory: Path) -> dict[str, Path]:
    """A CA and a server certificate for localhost / 127.0.0.1 signed by it (PEM files)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "radsurv test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP384R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {"ca": directory / "ca.pem", "cert": directory / "server.pem", "key": directory / "server.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return paths


def make_node_keys(directory: Path, name: str) -> tuple[Path, Path]:
    """An EC key pair for SuperNode authentication (private PEM, public OpenSSH)."""
    key = ec.generate_private_key(ec.SECP384R1())
    priv, pub = directory / f"{name}_key", directory / f"{name}_key.pub"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                       serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                  serialization.PublicFormat.OpenSSH))
    return priv, pub


class LocalDeployment:
    """One SuperLink and one SuperNode per site, as separate processes on localhost with TLS."""

    def __init__(self, workdir: Path, tables: Mapping[str, Path], *, min_patients: int = 5,
                 node_auth: bool = True, intruder: Path | None = None) -> None:
        """``node_auth``: the SuperLink admits only SuperNodes whose public keys were registered
        (``flwr supernode register``); ``intruder``: also start an unregistered SuperNode serving
        this table, which must never take part."""
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.node_auth = node_auth
        self.intruder = intruder
        self.tables = dict(tables)
        self.min_patients = min_patients
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        self.tls = make_tls(workdir / "tls")
        self.port = free_port()
        self.home = workdir / "flwr_home"
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "config.toml").write_text(
            '[superlink]\ndefault = "tls"\n\n[superlink.tls]\n'
            f'address = "127.0.0.1:{self.port}"\nroot-certificates = "{self.tls["ca"]}"\n')
        self.env = {**os.environ, "FLWR_HOME": str(self.home), "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
                    "FLWR_DISABLE_UPDATE_CHECK": "1", "FLWR_TELEMETRY_ENABLED": "0"}

    def _start(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = self.workdir / f"{name}.log"
        self.logs.append(log)
        proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=self.env,
                                cwd=self.workdir, start_new_session=True)
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        self._start("superlink", [str(BIN / "flower-superlink"), "--ssl-ca-certfile", str(self.tls["ca"]),
                                  "--ssl-certfile", str(self.tls["cert"]), "--ssl-keyfile", str(self.tls["key"]),
                                  "--host", "127.0.0.1", "--port", str(self.port),
                                  *(["--enable-supernode-auth"] if self.node_auth else [])])
        self._wait_port(self.port)
        nodes = list(self.tables.items())
        if self.intruder is not None:
            nodes.append(("intruder", self.intruder))
        for name, table in nodes:
            auth: list[str] = []
            if self.node_auth:
                priv, pub = make_node_keys(self.workdir, name)
                auth = ["--auth-supernode-private-key", str(priv)]
                if name != "intruder":
                    reg = subprocess.run([str(BIN / "flwr"), "supernode", "register", str(pub), "tls"], env=self.env,
                                         cwd=self.workdir, capture_output=True, text=True, timeout=300)
                    if reg.returncode != 0:
                        raise RuntimeError(f"registering {name}'s key failed:\n{reg.stdout}{reg.stderr}")
            node_cfg = (f"site-name='{name}' site-table='{table}' min-patients={self.min_patients} "
                        f"audit-log='{self.workdir / f'audit_{name}.jsonl'}'")
            self._start(f"supernode_{name}", [
                str(BIN / "flower-supernode"), "--root-certificates", str(self.tls["ca"]),
                "--superlink", f"127.0.0.1:{self.port}", "--node-config", node_cfg,
                "--host", "127.0.0.1", "--port", str(free_port()), *auth])

    def _wait_port(self, port: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"a Flower process exited early:\n{self.log_tail()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"port {port} did not open in {timeout} s:\n{self.log_tail()}")

    def run(self, app_dir: Path, timeout: float = 900.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "flwr"), "run", str(app_dir), "tls", "--stream"], env=self.env,
                              cwd=self.workdir, capture_output=True, text=True, timeout=timeout)

    def log_tail(self, n: int = 3000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-n:]}" for p in self.logs if p.exists())

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)

    def __enter__(self) -> LocalDeployment:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
