"""The body of the fake ``aws`` executable the tests put on PATH (the AWS CLI v2 and the
session-manager-plugin cannot be installed here: they are not Python packages).

It does the one thing rh needs from the real CLI: ``aws --version``, and ``aws ssm
start-session --target sagemaker-training-job:<job>_algo-1 --document-name
AWS-StartPortForwardingSession --parameters portNumber=32300,localPortNumber=<port>
[--region R] [--profile P]``, whose argv it checks (any other is refused, exit 2). It forwards
each connection to ``localPortNumber`` on 127.0.0.1 to the port the SageMaker stand-in wrote
for that job (``$RH_FAKE_SSM_DIR/jobs/<job>/port``, where its server listens instead of
32300), until it is killed, or until that port refuses a connection (the job ended: SSM ends
the session, exit 254). A job the stand-in does not run, or whose port is not written yet,
is refused as SSM refuses a target whose agent is not connected (exit 254). For a job of
several instances, whose algo-1 runs in a network namespace (named in
``$RH_FAKE_SSM_DIR/jobs/<job>/netns``), the connection to that port is made inside it. Each
start is appended to ``$RH_FAKE_SSM_DIR/sessions.log`` with its PID and argv.
"""

import json
import os
import re
import selectors
import socket
import sys

VERSION = os.environ.get("RH_FAKE_AWS_VERSION", "aws-cli/2.22.35 Python/3.12.6 Linux/6.1 "
                                                "exe/x86_64.debian.12")
TARGET = re.compile(r"sagemaker-training-job:([A-Za-z0-9-]+)_algo-(\d+)")
PARAMS = re.compile(r"portNumber=(\d+),localPortNumber=(\d+)")


def refuse(text, code=2):
    print(f"aws: error: {text}", file=sys.stderr, flush=True)
    sys.exit(code)


def upstream_of(port, ns):
    if ns is None:
        return socket.create_connection(("127.0.0.1", port))
    from standin_hosts import connect

    sock = connect(ns, port)
    sock.settimeout(None)
    return sock


def relay(listener, port, ns=None):
    """Accept on ``listener`` and move bytes both ways between each accepted connection and
    ``port``, all in one thread (no thread hand-offs on the way of a call)."""
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    while True:
        for key, _ in sel.select():
            if key.data is None:
                conn, _ = listener.accept()
                try:
                    upstream = upstream_of(port, ns)
                except OSError:
                    # The job's server is gone (the job ended): SSM ends the session.
                    print("\nSessionId: fake is terminated: the target is not connected.",
                          file=sys.stderr, flush=True)
                    sys.exit(254)
                for s in (conn, upstream):  # a relay adds no Nagle delay of its own
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sel.register(conn, selectors.EVENT_READ, upstream)
                sel.register(upstream, selectors.EVENT_READ, conn)
                continue
            src, dst = key.fileobj, key.data
            try:
                data = src.recv(1 << 20)
                if data:
                    dst.sendall(data)
                    continue
            except OSError:
                pass
            for s in (src, dst):
                try:
                    sel.unregister(s)
                except (KeyError, ValueError):
                    pass
                s.close()


def main(argv):
    if argv == ["--version"]:
        print(VERSION)
        return
    if argv[:2] != ["ssm", "start-session"]:
        refuse(f"the fake aws does only `ssm start-session`, not {argv}")
    opts = dict(zip(argv[2::2], argv[3::2], strict=False))
    if len(argv[2:]) % 2 or set(opts) - {"--target", "--document-name", "--parameters",
                                         "--region", "--profile"}:
        refuse(f"unexpected arguments {argv[2:]}")
    if opts.get("--document-name") != "AWS-StartPortForwardingSession":
        refuse(f"--document-name {opts.get('--document-name')!r}")
    target = TARGET.fullmatch(opts.get("--target", ""))
    params = PARAMS.fullmatch(opts.get("--parameters", ""))
    if not target or not params:
        refuse(f"--target {opts.get('--target')!r} --parameters {opts.get('--parameters')!r}")
    job, remote, local = target.group(1), int(params.group(1)), int(params.group(2))
    if remote != 32300:
        refuse(f"portNumber={remote}, where the job's server listens on 32300")
    folder = os.environ["RH_FAKE_SSM_DIR"]
    with open(os.path.join(folder, "sessions.log"), "a") as f:
        f.write(json.dumps({"pid": os.getpid(), "argv": argv}) + "\n")
    try:
        with open(os.path.join(folder, "jobs", job, "port")) as f:
            port = int(f.read())
    except (OSError, ValueError):
        refuse(f"An error occurred (TargetNotConnected) when calling the StartSession "
               f"operation: sagemaker-training-job:{job}_algo-1 is not connected.", 254)
    try:
        with open(os.path.join(folder, "jobs", job, "netns")) as f:
            ns = f.read().strip()
    except OSError:
        ns = None
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", local))
    listener.listen(64)
    print(f"\nStarting session with SessionId: fake-{os.getpid()}\nPort {local} opened for "
          f"sessionId fake-{os.getpid()}.\nWaiting for connections...\n", flush=True)
    relay(listener, port, ns)

if __name__ == "__main__":
    main(sys.argv[1:])
