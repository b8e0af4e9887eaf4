"""`python -m byol_worker agent --coordinator HOST:PORT ...`: parse flags, set up logs, run the agent.

    BYOL_AGENT_TOKEN=... python -m byol_worker agent --coordinator coord:50051 --host 10.0.0.7 --devices auto

Exit codes: 0 after SIGTERM/SIGINT once the trainers have stopped (a second SIGINT kills them at once);
2 bad flags or devices; 3 the coordinator refused the join token.
Environment: the token (`--token-env`, default BYOL_AGENT_TOKEN; never logged); BYOL_TRAINER_CMD, a
test/debug hook that replaces `python -m byol_worker trainer`; BYOL_AGENT_STORE_LINGER_S, how long a
generation's rendezvous store outlives its last local trainer (default 5).
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import socket
import tempfile

from . import logfmt
from .devices import DeviceError, detect

log = logging.getLogger("byol.agent")
# seconds a generation's TCPStore outlives the generation's last local trainer (tuning/test knob)
STORE_LINGER_ENV = "BYOL_AGENT_STORE_LINGER_S"


def _default_host() -> str:
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m byol_worker agent",
                                description="Join a byol coordinator and run trainers on this node's devices.")
    p.add_argument("--coordinator", required=True, help="coordinator gRPC address, HOST:PORT")
    p.add_argument("--token-env", default="BYOL_AGENT_TOKEN",
                   help="name of the env var that holds the join token (default BYOL_AGENT_TOKEN)")
    p.add_argument("--agent-id", default="", help="stable id of this agent (default <hostname>-<pid>)")
    p.add_argument("--host", default="", help="address other ranks reach this node on, for the rendezvous "
                                              "store (default: this host name's address)")
    p.add_argument("--devices", default="auto", help="auto (every GPU, else one CPU slot), cpu:N, or cuda")
    p.add_argument("--work-dir", default="", help="folder for assignment files and sockets "
                                                  "(default <tmp>/byol-agent-<agent-id>)")
    p.add_argument("--tls-ca", default="", help="PEM file of the CA that signed the coordinator's certificate; "
                                                "switches the connection to TLS (default: plaintext)")
    p.add_argument("--log-level", default=os.environ.get("BYOL_LOG_LEVEL", "info"),
                   choices=["debug", "info", "warning", "error"], type=str.lower)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logfmt.setup(args.log_level)
    if not re.fullmatch(r"[^\s:]+:\d{1,5}", args.coordinator) and not args.coordinator.startswith(("unix:", "[")):
        logfmt.event(log, "bad_flag", logging.ERROR, flag="--coordinator", value=args.coordinator,
                     hint="give the coordinator's gRPC address as HOST:PORT, e.g. coordinator:50051")
        return 2
    token = os.environ.get(args.token_env, "")
    if not token:
        logfmt.event(log, "no_token", logging.WARNING, env=args.token_env,
                     hint=f"set {args.token_env} to the coordinator's join token if it requires one")
    try:
        devices = detect(args.devices)
    except DeviceError as e:
        logfmt.event(log, "bad_flag", logging.ERROR, flag="--devices", reason=str(e))
        return 2
    agent_id = args.agent_id or f"{socket.gethostname()}-{os.getpid()}"
    host = args.host or _default_host()
    if not args.host and host.startswith("127."):
        logfmt.event(log, "loopback_host", logging.WARNING, host=host,
                     hint="ranks on other nodes cannot reach a rendezvous store here; pass --host <this node's address>")
    work_dir = args.work_dir or os.path.join(tempfile.gettempdir(),
                                             "byol-agent-" + re.sub(r"[^A-Za-z0-9._-]", "_", agent_id))
    try:
        os.makedirs(work_dir, exist_ok=True)
    except OSError as e:
        logfmt.event(log, "bad_flag", logging.ERROR, flag="--work-dir", value=work_dir, reason=str(e))
        return 2
    tls_root_pem = None
    if args.tls_ca:
        try:
            with open(args.tls_ca, "rb") as f:
                tls_root_pem = f.read()
        except OSError as e:
            logfmt.event(log, "bad_flag", logging.ERROR, flag="--tls-ca", value=args.tls_ca, reason=str(e))
            return 2
        if b"-----BEGIN CERTIFICATE-----" not in tls_root_pem:
            logfmt.event(log, "bad_flag", logging.ERROR, flag="--tls-ca", value=args.tls_ca,
                         reason="no PEM certificate in the file")
            return 2
    from .agent import Agent  # after the flags are checked: it pulls in grpc and zmq

    linger = os.environ.get(STORE_LINGER_ENV, "")
    try:
        linger_s = float(linger) if linger else 5.0
    except ValueError:
        logfmt.event(log, "bad_env", logging.ERROR, env=STORE_LINGER_ENV, value=linger, hint="give seconds, e.g. 5")
        return 2
    return Agent(args.coordinator, token, agent_id, host, devices, work_dir, store_linger_s=linger_s,
                 tls_root_pem=tls_root_pem).run()
