"""`python -m byol_worker agent --coordinator HOST:PORT ...`: parse flags, set up logs, run the agent.

    BYOL_AGENT_TOKEN=... python -m byol_worker agent --coordinator coord:50051 --host 10.0.0.7 --devices auto

    BYOL_AGENT_TOKEN_FILE=/run/secrets/agent-token python -m byol_worker agent --coordinator coord:50051 \
        --tls-ca ca.pem [--tls-cert agent.pem --tls-key agent-key.pem]

Exit codes: 0 after SIGTERM/SIGINT once the trainers have stopped (a second SIGINT kills them at once);
2 bad flags or devices; 3 the coordinator refused the join token.
The token comes from `--token-file` (BYOL_AGENT_TOKEN_FILE) or the environment (`--token-env`, default
BYOL_AGENT_TOKEN), never from the command line (where `ps` shows it), and is never logged; the agent removes
it from its environment so its trainers do not inherit it. Other environment: BYOL_TLS_CA, BYOL_TLS_CLIENT_CERT,
BYOL_TLS_CLIENT_KEY, BYOL_TLS_SERVER_NAME (the --tls-* flags); BYOL_TRAINER_CMD, a test/debug hook that replaces
`python -m byol_worker trainer`; BYOL_AGENT_STORE_LINGER_S, how long a generation's rendezvous store outlives
its last local trainer (default 5).
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import socket
import tempfile

from . import logfmt
from .devices import DeviceError, detect
from .tls import TlsFlagError, load_tls

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
    p.add_argument("--token-file", default=os.environ.get("BYOL_AGENT_TOKEN_FILE", ""),
                   help="file whose first line is the join token (BYOL_AGENT_TOKEN_FILE); wins over --token-env")
    p.add_argument("--agent-id", default="", help="stable id of this agent (default <hostname>-<pid>)")
    p.add_argument("--host", default="", help="address other ranks reach this node on, for the rendezvous "
                                              "store (default: this host name's address)")
    p.add_argument("--devices", default="auto", help="auto (every GPU, else one CPU slot), cpu:N, or cuda")
    p.add_argument("--work-dir", default="", help="folder for assignment files and sockets, created 0700 "
                                                  "(default a fresh <tmp>/byol-agent-<agent-id>-XXXX, removed on exit)")
    env = os.environ.get
    p.add_argument("--tls-ca", default=env("BYOL_TLS_CA", ""),
                   help="PEM file of the CA that signed the coordinator's certificate; switches the connection to "
                        "TLS and verifies the coordinator (BYOL_TLS_CA; default: plaintext)")
    p.add_argument("--tls-cert", default=env("BYOL_TLS_CLIENT_CERT", ""),
                   help="PEM client certificate, for a coordinator that requires them (mTLS) (BYOL_TLS_CLIENT_CERT)")
    p.add_argument("--tls-key", default=env("BYOL_TLS_CLIENT_KEY", ""), help="PEM private key of --tls-cert (BYOL_TLS_CLIENT_KEY)")
    p.add_argument("--tls-server-name", default=env("BYOL_TLS_SERVER_NAME", ""),
                   help="name to verify the coordinator's certificate against when it does not name the address "
                        "dialled (BYOL_TLS_SERVER_NAME)")
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
    try:
        token = _read_token(args.token_file) if args.token_file else os.environ.get(args.token_env, "")
    except OSError as e:
        logfmt.event(log, "bad_flag", logging.ERROR, flag="--token-file", value=args.token_file, reason=str(e))
        return 2
    # the trainers this agent starts inherit its environment and need no token
    os.environ.pop(args.token_env, None)
    if not token:
        logfmt.event(log, "no_token", logging.WARNING, env=args.token_env,
                     hint=f"set {args.token_env} or --token-file to the coordinator's join token")
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
    try:
        tls = load_tls(args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name)
    except TlsFlagError as e:
        logfmt.event(log, "bad_flag", logging.ERROR, flag=e.flag, value=e.value, reason=e.reason)
        return 2
    if tls is None:
        logfmt.event(log, "plaintext", logging.WARNING if not _loopback(args.coordinator) else logging.DEBUG,
                     coordinator=args.coordinator,
                     hint="the token and reports travel unencrypted and the coordinator is not verified; "
                          "use --tls-ca when the coordinator serves TLS")
    try:
        if args.work_dir:
            os.makedirs(args.work_dir, mode=0o700, exist_ok=True)
            work_dir = args.work_dir
        else:  # private (0700) and removed when the agent exits
            work_dir = tempfile.mkdtemp(prefix="byol-agent-" + re.sub(r"[^A-Za-z0-9._-]", "_", agent_id)[:40] + "-")
    except OSError as e:
        logfmt.event(log, "bad_flag", logging.ERROR, flag="--work-dir", value=args.work_dir, reason=str(e))
        return 2
    try:
        return _run(args, token, agent_id, host, devices, work_dir, tls)
    finally:
        if not args.work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)


def _read_token(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read().rstrip("\r\n")


def _loopback(target: str) -> bool:
    host = target.rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def _run(args, token, agent_id, host, devices, work_dir, tls) -> int:
    from .agent import Agent  # after the flags are checked: it pulls in grpc and zmq

    linger = os.environ.get(STORE_LINGER_ENV, "")
    try:
        linger_s = float(linger) if linger else 5.0
    except ValueError:
        logfmt.event(log, "bad_env", logging.ERROR, env=STORE_LINGER_ENV, value=linger, hint="give seconds, e.g. 5")
        return 2
    return Agent(args.coordinator, token, agent_id, host, devices, work_dir, store_linger_s=linger_s, tls=tls).run()
