"""The agent's part that speaks to Kubernetes from inside the pod: requests to the in-cluster API
as the pod's service account, scaling the cluster's StatefulSet to 0 when the server stops by
its idle rule, and the served functions kept in a ConfigMap across such a stop; with what the
agent shares (its log line, unpacking a tar safely). Standard library only: ``manifests.py``
ships it with ``agent.py`` in the container's ``python3 -c`` program, as the module
``agent_kube``.
"""

import base64
import io
import json
import os
import re
import ssl
import tarfile
import urllib.error
import urllib.request

HOME = os.environ.get("RH_HOME", "/mnt/rh")
NAME = os.environ.get("RH_CLUSTER_NAME", "rh")
#: Where Kubernetes mounts the pod's service-account token, its CA and namespace.
SA_DIR = os.environ.get("RH_SA_DIR", "/var/run/secrets/kubernetes.io/serviceaccount")
STATEFULSET = os.environ.get("RH_STATEFULSET", NAME)
STATE_MAP = os.environ.get("RH_STATE_CONFIGMAP")
#: Whether this pod is the head (``NAME-0``, or a pod not named as a StatefulSet's): only the
#: head's server keeps the idle rule; the others get no calls (maps reach them through Ray).
IS_HEAD = not re.fullmatch(re.escape(STATEFULSET) + r"-[1-9][0-9]*", os.environ.get("HOSTNAME", ""))
STATE_KEY = "state.tar.gz"
#: What a ConfigMap holds at most is 1 MiB; base64 makes it a third larger.
STATE_LIMIT = 700 * 1024


def say(text):
    print(f"rh-agent: {text}", flush=True)


def kube_request(method, path, body=None, content_type="application/json"):
    """One request to the in-cluster API as the pod's service account: the answer's JSON;
    raises with the API's own message when refused."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise RuntimeError("KUBERNETES_SERVICE_HOST is not set: the pod cannot reach the API")
    try:
        with open(os.path.join(SA_DIR, "token")) as f:
            token = f.read().strip()
    except OSError as e:
        raise RuntimeError(f"no service-account token at {SA_DIR} ({e.strerror}): is "
                           f"automountServiceAccountToken off for the pod?") from None
    if ":" in host:
        host = f"[{host}]"
    url = f"https://{host}:{port}{path}"
    request = urllib.request.Request(
        url, data=None if body is None else json.dumps(body).encode(), method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type,
                 "Accept": "application/json"})
    context = ssl.create_default_context(cafile=os.path.join(SA_DIR, "ca.crt"))
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as answer:
            return json.load(answer)
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read()).get("message") or e.reason
        except ValueError:
            message = e.reason
        raise RuntimeError(f"the API answered {e.code}: {message}") from None
    except (OSError, ssl.SSLError) as e:
        raise RuntimeError(f"the API at {url} cannot be reached: {e}") from None


def namespace():
    ns = os.environ.get("RH_NAMESPACE")
    if not ns:
        with open(os.path.join(SA_DIR, "namespace")) as f:
            ns = f.read().strip()
    return ns


def scale_to_zero():
    """PATCH the StatefulSet's ``scale`` to 0 replicas."""
    kube_request("PATCH", f"/apis/apps/v1/namespaces/{namespace()}/statefulsets/{STATEFULSET}"
                          f"/scale", {"spec": {"replicas": 0}}, "application/merge-patch+json")


def state_tar():
    """What the server served and the code synced for it (``server/NAME/resources`` and
    ``code``), as a gzipped tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for part in (os.path.join("server", NAME, "resources"), "code"):
            folder = os.path.join(HOME, part)
            if not os.path.isdir(folder):
                continue
            for entry in sorted(os.listdir(folder)):
                if not entry.endswith((".new", ".old", ".tar")):
                    tar.add(os.path.join(folder, entry), arcname=os.path.join(part, entry))
    return buf.getvalue()


def _state_map(data=None):
    """Read the state ConfigMap, or write ``data`` (bytes; empty: clear it) into it."""
    path = f"/api/v1/namespaces/{namespace()}/configmaps/{STATE_MAP}"
    current = kube_request("GET", path)
    if data is None:
        return current
    current["binaryData"] = {STATE_KEY: base64.b64encode(data).decode()} if data else {}
    return kube_request("PUT", path, current)


def save_state():
    """Keep what the server served in the state ConfigMap, so that the next pod serves it
    again; says why not when it cannot (the cluster still stops)."""
    if not STATE_MAP:
        return
    try:
        data = state_tar()
        if len(data) > STATE_LIMIT:
            say(f"the served functions and their code ({len(data) // 1024} KiB packed) are too "
                f"large for ConfigMap {STATE_MAP}: send them again with .to() after the "
                f"cluster comes back")
            return
        _state_map(data)
        say(f"served functions kept in ConfigMap {STATE_MAP} ({len(data) // 1024} KiB)")
    except Exception as e:  # noqa: BLE001 - the cluster still stops; said in the log
        say(f"could not keep the served functions in ConfigMap {STATE_MAP}: {e}; send them "
            f"again with .to() after the cluster comes back")


def restore_state():
    """A new pod of a cluster stopped by autostop: take what the last pod kept, then empty the
    ConfigMap (it is for one comeback)."""
    if not STATE_MAP or not os.path.exists(os.path.join(SA_DIR, "token")):
        return
    try:
        data = (_state_map().get("binaryData") or {}).get(STATE_KEY)
        if not data:
            return
        with tarfile.open(fileobj=io.BytesIO(base64.b64decode(data)), mode="r:gz") as tar:
            extract(tar, HOME)
        _state_map(b"")
        say(f"served functions taken back from ConfigMap {STATE_MAP}")
    except Exception as e:  # noqa: BLE001 - the pod starts empty; said in the log
        say(f"could not take the served functions back from ConfigMap {STATE_MAP}: {e}")


def stop_by_autostop(minutes):
    """The server stopped after ``minutes`` idle: keep what it served, scale the StatefulSet to 0
    (the pods go). None when done; else why not, in words for the log and ``GET /agent``."""
    say(f"the rh server stopped after {minutes:g} idle minutes (autostop): scaling StatefulSet "
        f"{STATEFULSET} to 0 replicas")
    try:
        save_state()
        scale_to_zero()
    except Exception as e:  # noqa: BLE001 - said in the log and in GET /agent
        why = (f"autostop could not scale StatefulSet {STATEFULSET} to 0 replicas: {e}. The "
               f"pod's service account ({os.environ.get('RH_SERVICE_ACCOUNT') or 'default'}) "
               f"needs get and patch on statefulsets/scale (API group apps) for {STATEFULSET} "
               f"(see docs/clusters/kubernetes.md); the server was started again, and autostop "
               f"tries again after the next idle period")
        say(why)
        return why
    say(f"StatefulSet {STATEFULSET} scaled to 0 replicas: this pod goes; c.up() or the next "
        f"call brings the cluster back")
    return None


def extract(tar, dest):
    """Unpack ``tar`` into ``dest``, refusing members that would land outside it or that are
    not plain files, folders or links inside it."""
    root = os.path.realpath(dest)
    for m in tar.getmembers():
        target = os.path.realpath(os.path.join(root, m.name))
        if not (target == root or target.startswith(root + os.sep)):
            raise ValueError(f"refusing {m.name!r}: outside the folder")
        if not (m.isfile() or m.isdir() or m.issym()):
            raise ValueError(f"refusing {m.name!r}: not a file, folder or symlink")
        if m.issym() and os.path.isabs(m.linkname):
            raise ValueError(f"refusing {m.name!r}: an absolute link")
    tar.extractall(root)
