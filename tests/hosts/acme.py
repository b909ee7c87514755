"""Pebble, Let's Encrypt's test ACME server (Debian's package), inside the lab namespace: the
nginx role's certbot gets a real certificate through HTTP-01 without leaving the lab.

pebble-challtestsrv answers Pebble's DNS queries (every name → the host that serves it), Pebble
serves ACME over HTTPS with a certificate made here, and issues from a root it makes at start."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.hosts.lab import CONTROLLER, LabError, lab_net, run

ACME_PORT = 14000
MANAGEMENT_PORT = 15000
DNS_PORT = 8053
DIRECTORY = f"https://{CONTROLLER}:{ACME_PORT}/dir"
START_TIMEOUT = 30.0


@dataclass
class Pebble:
    """A running Pebble: its directory URL, the CA its own HTTPS uses, and where the issuing
    root (what viewers must trust) is written once fetched."""

    directory: str
    server_ca: Path
    work: Path
    processes: list[subprocess.Popen[bytes]]

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(10)

    def issuing_root(self) -> Path:
        """Pebble's issuing root, fetched from its management interface."""
        path = self.work / "pebble-root.pem"
        pem = run(lab_net([
            "curl", "--silent", "--fail", "--cacert", str(self.server_ca),
            f"https://{CONTROLLER}:{MANAGEMENT_PORT}/roots/0",
        ]))  # fmt: skip
        path.write_text(pem)
        return path


def server_certificate(work: Path) -> tuple[Path, Path, Path]:
    """A CA and, signed by it, the certificate Pebble's HTTPS listeners present (for the
    controller's lab address): (ca, cert, key)."""
    ca, ca_key = work / "pebble-ca.pem", work / "pebble-ca.key"
    cert, key = work / "pebble.pem", work / "pebble.key"
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", "/CN=onair lab ACME CA", "-keyout", str(ca_key),
         "-out", str(ca)])  # fmt: skip
    request = work / "pebble.csr"
    run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-subj", f"/CN={CONTROLLER}", "-keyout", str(key), "-out", str(request)])  # fmt: skip
    extensions = work / "pebble.ext"
    extensions.write_text(f"subjectAltName=IP:{CONTROLLER}\n")
    run(["openssl", "x509", "-req", "-in", str(request), "-CA", str(ca), "-CAkey", str(ca_key),
         "-CAcreateserial", "-days", "2", "-extfile", str(extensions),
         "-out", str(cert)])  # fmt: skip
    return ca, cert, key


def wait_answering(url: str, ca: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        done = subprocess.run(
            lab_net(["curl", "--silent", "--fail", "--cacert", str(ca), url]),
            capture_output=True,
            timeout=10,
        )
        if done.returncode == 0:
            return
        time.sleep(0.5)
    raise LabError(f"Pebble did not answer {url} within {START_TIMEOUT:.0f} s")


def start_pebble(work: Path, address: str) -> Pebble:
    """challtestsrv (DNS: every name is `address`) and Pebble, in the lab namespace. They stop
    with stop(), or with the lab (teardown kills every process in its namespace)."""
    ca, cert, key = server_certificate(work)
    config = work / "pebble.json"
    config.write_text(json.dumps({"pebble": {
        "listenAddress": f"{CONTROLLER}:{ACME_PORT}",
        "managementListenAddress": f"{CONTROLLER}:{MANAGEMENT_PORT}",
        "certificate": str(cert), "privateKey": str(key),
        "httpPort": 80, "tlsPort": 443,  # where it validates HTTP-01 / TLS-ALPN-01 on the host
        "ocspResponderURL": "", "externalAccountBindingRequired": False,
    }}))  # fmt: skip
    with (work / "pebble.log").open("ab") as log:  # the children keep their own copy
        dns = subprocess.Popen(
            lab_net([
                "pebble-challtestsrv", "-defaultIPv4", address, "-defaultIPv6", "",
                "-dns01", f"{CONTROLLER}:{DNS_PORT}", "-http01", "", "-https01", "",
                "-tlsalpn01", "", "-management", f"{CONTROLLER}:8055",
            ]),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        acme = subprocess.Popen(
            lab_net([
                "env", "PEBBLE_VA_NOSLEEP=1",  # validate at once, not after a random delay
                # Pebble rejects 5 % of nonces to exercise clients' retries; Debian 12's certbot
                # (2.1 on Python 3.11) crashes on that ACME error ("AttributeError: can't set
                # attribute", certbot#9539), which failed an all-in-one converge of the lab.
                # Let's Encrypt does not reject nonces that way.
                "PEBBLE_WFE_NONCEREJECT=0",
                "pebble", "-config", str(config), "-dnsserver", f"{CONTROLLER}:{DNS_PORT}",
            ]),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    pebble = Pebble(DIRECTORY, ca, work, [dns, acme])
    try:
        wait_answering(DIRECTORY, ca)
    except LabError:
        pebble.stop()
        raise
    return pebble
