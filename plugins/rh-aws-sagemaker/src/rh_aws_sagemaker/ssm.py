"""The ``aws_ssm`` connection type: a local port forwarded to the server's port in the training
container by ``aws ssm start-session`` (AWS Systems Manager's port forwarding, through the SSM
agent SageMaker runs in the container when RemoteDebugConfig is on). No port of the job is
open to the network.

The session is a child process (the AWS CLI v2 running the session-manager-plugin) in a
process group of its own; a watcher starts it again on the same local port when it dies, and
``close`` kills its group."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request

from rh_aws_sagemaker.errors import DOCS, SessionManagerMissingError
from rh_aws_sagemaker.provider import SageMakerProvider
from rh_core.errors import ConfigError, ConnectionFailedError
from rh_core.paths import rh_home
from rh_core.plugin.interfaces import ConnectionInfo, ConnectionType

#: How long a new session may take to forward (the SSM agent starts with the container).
OPEN_TIMEOUT = 300
#: How long a session that died is given to come back before calls fail.
RESTART_WAIT = 60
INSTALL_CLI = ("install the AWS CLI v2 (https://docs.aws.amazon.com/cli/latest/userguide/"
               "getting-started-install.html; `pip install awscli` is v1 and cannot do this)")
INSTALL_PLUGIN = ("install the Session Manager plugin (https://docs.aws.amazon.com/systems-"
                  "manager/latest/userguide/session-manager-working-with-install-plugin.html)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_tools() -> str:
    """The path of ``aws`` after checking it is the CLI v2 and the session-manager-plugin is
    installed; a clear error otherwise (neither is a Python package)."""
    aws = shutil.which("aws")
    if aws is None:
        raise SessionManagerMissingError(
            f"the aws_ssm connection runs `aws ssm start-session`, and `aws` is not on PATH: "
            f"{INSTALL_CLI}, then {INSTALL_PLUGIN} (see {DOCS})")
    try:
        out = subprocess.run([aws, "--version"], capture_output=True, text=True, timeout=60)
        said = (out.stdout + out.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SessionManagerMissingError(f"`{aws} --version` failed ({e}): {INSTALL_CLI}") from None
    m = re.search(r"aws-cli/(\d+)\.", said)
    if not m or int(m.group(1)) < 2:
        raise SessionManagerMissingError(
            f"`aws --version` says {said!r}: the aws_ssm connection needs the AWS CLI v2 "
            f"(v1 has no port forwarding sessions): {INSTALL_CLI}")
    if shutil.which("session-manager-plugin") is None:
        raise SessionManagerMissingError(
            f"the session-manager-plugin is not on PATH (the AWS CLI runs it for `aws ssm "
            f"start-session`): {INSTALL_PLUGIN}")
    return aws


class Session:
    """One ``aws ssm start-session`` port forwarding, kept alive until :meth:`close`."""

    def __init__(self, target: str, remote_port: int, region: str | None, profile: str | None,
                 log_name: str, ended=None):
        self.aws = check_tools()
        #: Says why the target is gone for good (its job ended), else None; asked while a
        #: new session waits for the server, so a job that failed ends the wait at once.
        self.ended = ended or (lambda: None)
        self.target, self.remote_port = target, remote_port
        self.region, self.profile = region, profile
        self.port = free_port()
        self.log_path = rh_home() / "logs" / f"ssm-{log_name}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.closed = False
        self.restarts = 0
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)

    def argv(self) -> list[str]:
        argv = [self.aws, "ssm", "start-session", "--target", self.target, "--document-name",
                "AWS-StartPortForwardingSession", "--parameters",
                f"portNumber={self.remote_port},localPortNumber={self.port}"]
        if self.region:
            argv += ["--region", self.region]
        if self.profile:
            argv += ["--profile", self.profile]
        return argv

    def _spawn(self) -> subprocess.Popen:
        log = open(self.log_path, "ab")
        try:
            return subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()

    def start(self, timeout: float = OPEN_TIMEOUT) -> None:
        """Start the session and wait until the server answers through it."""
        with self.lock:
            self.proc = self._spawn()
        # The session runs in a process group of its own (so a Ctrl-C in the terminal does not
        # end it under a call): end it with this process at the latest.
        atexit.register(self.close)
        self.wait_ready(timeout)
        threading.Thread(target=self._watch, daemon=True, name=f"ssm {self.target}").start()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        asked = time.monotonic()
        url = f"http://127.0.0.1:{self.port}/health"
        while True:
            proc = self.proc
            if proc is not None and proc.poll() is not None and not self.closed:
                # Died before forwarding: the target is not ready yet (its SSM agent starts
                # with the container), or the session was refused. Try again until the end.
                gone = self.ended()
                if gone:
                    raise ConnectionFailedError(f"the server cannot be reached: {gone}")
                if time.monotonic() > deadline:
                    raise ConnectionFailedError(self._failure("exited with code "
                                                              f"{proc.returncode}"))
                time.sleep(1.0)
                with self.lock:
                    if not self.closed:
                        self.proc = self._spawn()
                continue
            try:
                with urllib.request.urlopen(url, timeout=5):
                    return
            except urllib.error.HTTPError:
                return  # the server answered (an error is still an answer)
            except OSError:
                pass
            if time.monotonic() > asked + 5:
                asked = time.monotonic()
                gone = self.ended()
                if gone:
                    raise ConnectionFailedError(f"the server cannot be reached: {gone}")
            if time.monotonic() > deadline:
                raise ConnectionFailedError(self._failure(f"forwarded nothing in {timeout:.0f} s"))
            time.sleep(0.05)

    def _failure(self, what: str) -> str:
        try:
            tail = self.log_path.read_text(errors="replace")[-1500:].strip()
        except OSError:
            tail = ""
        return (f"the SSM session to {self.target} ({' '.join(self.argv()[1:4])} ...) {what}"
                + (f"; it said: {tail}" if tail else "") +
                f". Check that the job runs (c.status()), that your identity may use "
                f"ssm:StartSession on it, and see {DOCS} for the SSM setup")

    def _watch(self) -> None:
        """Start the session again, on the same local port, whenever it dies."""
        while True:
            proc = self.proc
            if proc is None:
                return
            proc.wait()
            with self.lock:
                if self.closed:
                    return
                self.restarts += 1
            try:
                self.wait_ready(RESTART_WAIT)
            except ConnectionFailedError:
                pass  # calls fail meanwhile and say so; the watcher keeps trying
            except Exception:  # noqa: BLE001 - a watcher thread must not die silently
                time.sleep(1.0)

    def close(self) -> None:
        """Kill the session's process group (the CLI and its session-manager-plugin)."""
        with self.lock:
            self.closed = True
            proc = self.proc
        atexit.unregister(self.close)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


class SSMConnection(ConnectionType):
    """The server of a SageMaker cluster's head instance (``algo-1``) through an SSM port
    forwarding session."""

    name = "aws_ssm"

    def open(self) -> ConnectionInfo:
        provider = self.cluster.provider
        if not isinstance(provider, SageMakerProvider):
            raise ConfigError(f"the {self.name} connection type needs a sagemaker cluster, not "
                              f"a {type(provider).name} one")
        job = provider.job_name
        self.session = Session(f"sagemaker-training-job:{job}_algo-1", self.endpoint.port,
                               provider.aws.region, self.cluster.profile, job,
                               ended=self.explain_drop)
        try:
            self.session.start()
        except BaseException:
            self.session.close()
            raise
        return ConnectionInfo(f"http://127.0.0.1:{self.session.port}", verify=False)

    def close(self) -> None:
        session = self.__dict__.get("session")
        if session is not None:
            session.close()

    def explain_drop(self) -> str | None:
        """Why the server went away: the job ended (its status and reason), or the session."""
        provider = self.cluster.provider
        try:
            job = provider.describe()
        except Exception:  # noqa: BLE001 - explaining must not raise
            return None
        if job.get("status") not in (None, "InProgress"):
            reason = job.get("failure_reason") or job.get("message") or ""
            return (f"the training job {job['job_name']} is {job['status']} "
                    f"({job.get('secondary_status')}{': ' + reason if reason else ''})")
        return None
