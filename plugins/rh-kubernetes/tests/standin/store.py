"""The stand-in's objects: namespaces with their Secrets, ConfigMaps, Services, StatefulSets,
Pods, Events, ServiceAccounts, Roles and RoleBindings, kept as the JSON the real API server answers; who may
do what: the kubeconfig's users by a small table keyed by bearer token, and pods' service
accounts (the tokens the kubelet mounts into pods) by RBAC as the real server evaluates it: the
rules of the Roles bound to the account in its namespace (``apiGroups``, ``resources`` with
subresources such as ``statefulsets/scale``, ``verbs``, ``resourceNames``; ``*`` allowed; no
ClusterRoles); ResourceQuotas on ``requests.cpu``, ``requests.memory`` and GPUs; and the
``Status`` answers the real server gives when it refuses."""

from __future__ import annotations

import base64
import datetime
import itertools
import re
import uuid

#: token -> (user, {(verb, resource)} it may NOT do). ``admin`` may do everything.
USERS = {
    "standin-admin-token": ("admin", set()),
    "standin-limited-token": ("limited", {("create", "statefulsets")}),
}
#: resource -> API group ("" is the core group), as RBAC names them.
RBAC_GROUP = "rbac.authorization.k8s.io"
GROUPS = {"statefulsets": "apps", "roles": RBAC_GROUP, "rolebindings": RBAC_GROUP}
KINDS = {"secrets": "Secret", "services": "Service", "statefulsets": "StatefulSet",
         "pods": "Pod", "events": "Event", "serviceaccounts": "ServiceAccount",
         "roles": "Role", "rolebindings": "RoleBinding", "configmaps": "ConfigMap"}
API_VERSIONS = {"statefulsets": "apps/v1", "roles": f"{RBAC_GROUP}/v1",
                "rolebindings": f"{RBAC_GROUP}/v1"}


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status(code: int, reason: str, message: str, **details) -> dict:
    """A ``Status`` answer, as the API server writes it."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "details": details, "code": code}


class Refused(Exception):
    def __init__(self, body: dict):
        self.body = body
        super().__init__(body["message"])


def quantity(text: str | None) -> float:
    """A Kubernetes quantity as a number (cores, bytes, count)."""
    if text in (None, ""):
        return 0.0
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G|T)?", str(text))
    if not m:
        raise ValueError(f"quantities must match the regular expression, got {text!r}")
    scale = {None: 1, "m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
             "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}[m.group(2)]
    return float(m.group(1)) * scale


class Store:
    """Everything the stand-in API holds, in memory."""

    def __init__(self):
        self.namespaces: dict[str, dict[str, dict[str, dict]]] = {}
        self.quotas: dict[str, dict[str, str]] = {}
        self.version = itertools.count(1)
        #: token -> (namespace, service account): the tokens the kubelet mounted into pods.
        self.sa_tokens: dict[str, tuple[str, str]] = {}
        for ns in ("default", "kube-system"):
            self.add_namespace(ns)

    def add_namespace(self, ns: str, quota: dict[str, str] | None = None) -> None:
        if ns not in self.namespaces:
            self.namespaces[ns] = {r: {} for r in KINDS}
            # Every namespace has the service account "default" (its controller makes it).
            self.create(ns, "serviceaccounts", {"metadata": {"name": "default"}})
        if quota:
            self.quotas[ns] = quota

    # ------------------------------------------------------------------ access

    def user(self, authorization: str | None) -> tuple[str, set]:
        token = (authorization or "").removeprefix("Bearer ").strip()
        if token not in USERS:
            raise Refused(status(401, "Unauthorized", "Unauthorized"))
        return USERS[token]

    def issue_token(self, ns: str, account: str) -> str:
        """A token of the service account ``account`` (what the kubelet mounts into a pod)."""
        token = f"standin-sa-{uuid.uuid4().hex}"
        self.sa_tokens[token] = (ns, account)
        return token

    def authorize(self, authorization: str | None, verb: str, resource: str, ns: str,
                  name: str | None = None) -> None:
        """Refuse (401, 403) what the caller may not do: ``verb`` on ``resource`` (with its
        subresource: ``statefulsets/scale``) in ``ns``, on the object ``name`` if given."""
        token = (authorization or "").removeprefix("Bearer ").strip()
        base = resource.split("/")[0]
        group = GROUPS.get(base, "")
        if token in self.sa_tokens:
            sa_ns, account = self.sa_tokens[token]
            if account not in self.namespaces.get(sa_ns, {}).get("serviceaccounts", {}):
                raise Refused(status(401, "Unauthorized", "Unauthorized"))  # account deleted
            user = f"system:serviceaccount:{sa_ns}:{account}"
            allowed = sa_ns == ns and any(
                _rule_allows(rule, verb, group, resource, name)
                for rule in self._rules(ns, account))
        else:
            user, denied = self.user(authorization)
            allowed = not ((verb, resource) in denied or
                           (verb, base) in denied and "/" not in resource)
        if not allowed:
            shown = f"{base}.{group}" if group else base
            what = f'{shown} "{name}"' if name else shown
            raise Refused(status(
                403, "Forbidden",
                f'{what} is forbidden: User "{user}" cannot {verb} resource "{resource}" in API '
                f'group "{group}" in the namespace "{ns}"', group=group, kind=base,
                **({"name": name} if name else {})))

    def _rules(self, ns: str, account: str) -> list[dict]:
        """The rules of the Roles bound to the service account ``account`` of ``ns``."""
        rules = []
        for binding in self.objects(ns, "rolebindings").values():
            if not any(s.get("kind") == "ServiceAccount" and s.get("name") == account and
                       s.get("namespace", ns) == ns for s in binding.get("subjects") or []):
                continue
            ref = binding.get("roleRef") or {}
            role = self.objects(ns, "roles").get(ref.get("name")) if ref.get("kind") == "Role" \
                else None
            if role is not None:
                rules += role.get("rules") or []
        return rules

    def objects(self, ns: str, resource: str) -> dict[str, dict]:
        if ns not in self.namespaces:
            raise Refused(status(404, "NotFound", f'namespaces "{ns}" not found',
                                 name=ns, kind="namespaces"))
        return self.namespaces[ns][resource]

    # ------------------------------------------------------------------ objects

    def create(self, ns: str, resource: str, obj: dict) -> dict:
        objs = self.objects(ns, resource)
        meta = obj.setdefault("metadata", {})
        name = meta.get("name")
        if name in objs:
            group = GROUPS.get(resource, "")
            raise Refused(status(409, "AlreadyExists",
                                 f'{resource}{"." + group if group else ""} "{name}" already '
                                 f"exists", name=name, kind=resource))
        meta.update(namespace=ns, uid=str(uuid.uuid4()), creationTimestamp=now(),
                    resourceVersion=str(next(self.version)))
        obj["kind"] = KINDS[resource]
        obj.setdefault("apiVersion", API_VERSIONS.get(resource, "v1"))
        if resource == "secrets" and obj.get("stringData"):
            data = obj.setdefault("data", {})
            for k, v in obj.pop("stringData").items():
                data[k] = base64.b64encode(v.encode()).decode()
        objs[name] = obj
        return obj

    def get(self, ns: str, resource: str, name: str) -> dict:
        obj = self.objects(ns, resource).get(name)
        if obj is None:
            group = GROUPS.get(resource, "")
            raise Refused(status(404, "NotFound",
                                 f'{resource}{"." + group if group else ""} "{name}" not found',
                                 name=name, kind=resource))
        return obj

    def replace(self, ns: str, resource: str, name: str, obj: dict) -> dict:
        old = self.get(ns, resource, name)
        wanted = obj.get("metadata", {}).get("resourceVersion")
        if wanted and wanted != old["metadata"]["resourceVersion"]:
            raise Refused(status(409, "Conflict", f'Operation cannot be fulfilled on {resource} '
                                                  f'"{name}": the object has been modified'))
        meta = obj.setdefault("metadata", {})
        for key in ("uid", "creationTimestamp", "namespace"):
            meta[key] = old["metadata"][key]
        meta["resourceVersion"] = str(next(self.version))
        obj["kind"], obj["apiVersion"] = old["kind"], old["apiVersion"]
        if "status" in old:
            obj["status"] = old["status"]
        if resource == "secrets" and obj.get("stringData"):
            obj["data"] = {}
            for k, v in obj.pop("stringData").items():
                obj["data"][k] = base64.b64encode(v.encode()).decode()
        self.objects(ns, resource)[name] = obj
        return obj

    def remove(self, ns: str, resource: str, name: str) -> dict:
        obj = self.get(ns, resource, name)
        del self.objects(ns, resource)[name]
        return obj

    def select(self, ns: str, resource: str, label_selector: str | None = None,
               field_selector: str | None = None) -> list[dict]:
        """Objects matching ``key=value,...`` label and field selectors (equality only, as rh
        uses them)."""
        wanted = dict(p.split("=", 1) for p in (label_selector or "").split(",") if p)
        fields = dict(p.split("=", 1) for p in (field_selector or "").split(",") if p)
        out = []
        for obj in self.objects(ns, resource).values():
            labels = obj["metadata"].get("labels") or {}
            if any(labels.get(k) != v for k, v in wanted.items()):
                continue
            if any(_field(obj, k) != v for k, v in fields.items()):
                continue
            out.append(obj)
        return out

    def event(self, ns: str, obj: dict, reason: str, message: str, type_: str = "Normal",
              component: str = "kubelet") -> None:
        """Record an event about ``obj`` (repeats of the same one are counted, as kubelet's
        are)."""
        meta = obj["metadata"]
        for e in self.objects(ns, "events").values():
            inv = e["involvedObject"]
            if inv["uid"] == meta["uid"] and e["reason"] == reason and e["message"] == message:
                e["count"] += 1
                e["lastTimestamp"] = now()
                return
        name = f"{meta['name']}.{uuid.uuid4().hex[:16]}"
        self.create(ns, "events", {
            "metadata": {"name": name},
            "involvedObject": {"kind": obj["kind"], "name": meta["name"], "namespace": ns,
                               "uid": meta["uid"], "apiVersion": obj["apiVersion"]},
            "reason": reason, "message": message, "type": type_, "count": 1,
            "firstTimestamp": now(), "lastTimestamp": now(),
            "source": {"component": component}})

    def quota_refusal(self, ns: str, pod: dict) -> str | None:
        """The quota message that refuses ``pod`` in ``ns``, or None when it fits."""
        quota = self.quotas.get(ns)
        if not quota:
            return None
        for key, limit in quota.items():
            resource = key.split(".", 1)[1]
            asked = _requested(pod, resource)
            used = sum(_requested(p, resource) for p in self.objects(ns, "pods").values())
            if used + asked > quantity(limit):
                return (f'pods "{pod["metadata"]["name"]}" is forbidden: exceeded quota: '
                        f"compute-quota, requested: {key}={_show(asked, resource)}, used: "
                        f"{key}={_show(used, resource)}, limited: {key}={limit}")
        return None


def _rule_allows(rule: dict, verb: str, group: str, resource: str, name: str | None) -> bool:
    def has(key: str, value: str) -> bool:
        values = rule.get(key) or []
        return "*" in values or value in values
    names = rule.get("resourceNames") or []
    return (has("apiGroups", group) and has("resources", resource) and has("verbs", verb)
            and (not names or name in names))


def _requested(pod: dict, resource: str) -> float:
    total = 0.0
    for c in pod["spec"].get("containers", []):
        res = c.get("resources") or {}
        total += quantity((res.get("requests") or {}).get(resource)
                          or (res.get("limits") or {}).get(resource))
    return total


def _show(value: float, resource: str) -> str:
    if resource == "memory":
        return f"{value / 2**30:g}Gi"
    return f"{value:g}"


def _field(obj: dict, path: str):
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj
