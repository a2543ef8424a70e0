"""Code roots on a SageMaker job of several instances: the head instance (``algo-1``) is the only
one the client reaches (the SSM session), so the code roots synced into it (``~/rh-code/<folder>``,
``rh_aws_sagemaker.codesync``) are forwarded from there to every other instance, into the same
path, where the Ray tasks of a ``.map`` load them (``rh_server/ray_map.py``).

Standard library only: it runs beside ``node.py`` before and outside rh's virtualenv.

- Every other instance runs a small HTTP receiver on its own address (``CODE_PORT``):
  ``PUT /code/<folder>?digest=D`` with the tar of a code root and the cluster's owner token as a
  bearer token; the tree is swapped in whole, with its digest beside it.
- The head watches ``~/rh-code``: a folder whose ``.rh-digest`` (written last by the sync)
  differs from its ``.rh-forwarded`` is sent to every other instance, then ``.rh-forwarded``
  takes its digest; a failure is written to ``.rh-forward-error`` instead. The client waits for
  one of the two before it calls the function.
"""

import hmac
import http.server
import io
import os
import re
import shutil
import tarfile
import threading
import time
import urllib.parse
import urllib.request

CODE_PORT = int(os.environ.get("RH_SM_CODE_PORT", "32301"))
DIGEST, FORWARDED, ERROR = ".rh-digest", ".rh-forwarded", ".rh-forward-error"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def code_root():
    """Where the head's server puts synced code roots (relative paths start at its home)."""
    return os.path.join(os.path.expanduser("~"), "rh-code")


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def _tar(folder):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in sorted(os.listdir(folder)):
            if name not in (FORWARDED, ERROR, DIGEST):
                tar.add(os.path.join(folder, name), arcname=name)
    return buf.getvalue()


def forward_once(others, token, say):
    """Send every code root whose digest changed to ``others`` (addresses)."""
    root = code_root()
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return
    for name in names:
        folder = os.path.join(root, name)
        digest = _read(os.path.join(folder, DIGEST))
        if not NAME.fullmatch(name) or not digest or \
                _read(os.path.join(folder, FORWARDED)) == digest:
            continue
        body = _tar(folder)
        failed = []
        for ip in others:
            req = urllib.request.Request(
                f"http://{ip}:{CODE_PORT}/code/{name}?digest={urllib.parse.quote(digest)}",
                data=body, method="PUT", headers={"Authorization": f"Bearer {token}"})
            try:
                with urllib.request.urlopen(req, timeout=600) as r:
                    r.read()
            except OSError as e:
                failed.append(f"{ip}: {e}")
        if failed:
            _write(os.path.join(folder, ERROR), f"{digest} forwarding {name} to the other "
                                                f"instances failed: {'; '.join(failed)}")
            say(f"forwarding the code root {name} failed: {'; '.join(failed)}")
        else:
            _write(os.path.join(folder, FORWARDED), digest)
            say(f"code root {name} forwarded to {len(others)} instances ({len(body)} bytes)")


def start_forwarding(others, token, say, every=0.2):
    """The head's forwarding loop, in a daemon thread."""
    def loop():
        while True:
            try:
                forward_once(others, token, say)
            except Exception as e:  # noqa: BLE001 - keep forwarding later syncs
                say(f"forwarding code failed: {type(e).__name__}: {e}")
            time.sleep(every)

    thread = threading.Thread(target=loop, daemon=True, name="code forwarding")
    thread.start()
    return thread


class Receiver(http.server.BaseHTTPRequestHandler):
    token = ""

    def log_message(self, *args):
        pass

    def answer(self, status, text):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        url = urllib.parse.urlsplit(self.path)
        name = url.path[len("/code/"):]
        digest = urllib.parse.parse_qs(url.query).get("digest", [""])[0]
        given = self.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return self.answer(401, "no or wrong token")
        if not url.path.startswith("/code/") or not NAME.fullmatch(name) or not digest:
            return self.answer(400, f"bad request {url.path}")
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        root = code_root()
        os.makedirs(root, exist_ok=True)
        dest = os.path.join(root, name)
        new = f"{dest}.incoming-{threading.get_ident()}"
        shutil.rmtree(new, ignore_errors=True)
        with tarfile.open(fileobj=io.BytesIO(body)) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(new, filter="data")
            else:
                tar.extractall(new)
        _write(os.path.join(new, DIGEST), digest)
        old = f"{dest}.old-{threading.get_ident()}"
        if os.path.exists(dest):
            os.rename(dest, old)
        os.rename(new, dest)
        shutil.rmtree(old, ignore_errors=True)
        self.answer(200, dest)


def start_receiving(ip, token, say):
    """This instance's receiver of code roots, in a daemon thread."""
    handler = type("TokenReceiver", (Receiver,), {"token": token})
    server = http.server.ThreadingHTTPServer((ip, CODE_PORT), handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="code receiver").start()
    say(f"receiving code roots on {ip}:{CODE_PORT}")
    return server
