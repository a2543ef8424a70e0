"""The stand-in's HTTP routes: the subset of the Kubernetes API that rh uses, answered as the
real API server answers them (JSON objects, lists, ``Status`` refusals), so the real
``kubernetes`` client runs unchanged against it.

Implemented: create/get/replace/delete/list (by label selector) of Secrets, ConfigMaps, Services,
StatefulSets (apps/v1), ServiceAccounts, and Roles and RoleBindings
(rbac.authorization.k8s.io/v1); get and patch (merge or strategic-merge patch of
``spec.replicas``) of a StatefulSet's ``scale`` subresource (an ``autoscaling/v1`` Scale);
get/list/delete of Pods, their log, their ``eviction``; list of Events by
``involvedObject.name``; the ``pods/{name}/portforward`` websocket (``v4.channel.k8s.io``, in
:mod:`standin.portforward`). Bearer tokens: the kubeconfig's users, and the service-account
tokens mounted into pods, judged by the Roles bound to them (:mod:`standin.store`).

Not implemented: watches, patch of anything but ``scale``, JSON patch, server-side apply,
admission webhooks, discovery, ClusterRoles, any other resource. The ``/standin/...`` routes
are the tests' controls (a node-pressure eviction, an OOM kill), not Kubernetes routes.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute

from standin import portforward
from standin.store import Refused, Store, status

CORE = "/api/v1/namespaces/{ns}"
APPS = "/apis/apps/v1/namespaces/{ns}"
RBAC = "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}"
MERGE_PATCHES = ("application/merge-patch+json", "application/strategic-merge-patch+json")


def _answer(fn):
    async def handler(request: Request):
        try:
            return await fn(request)
        except Refused as e:
            return JSONResponse(e.body, status_code=e.body["code"])
    return handler


def routes(store: Store, kubelet) -> list:
    """The routes, over ``store`` (objects) and ``kubelet`` (pods' processes)."""

    def auth(request: Request, verb: str, resource: str) -> str:
        ns = request.path_params["ns"]
        store.authorize(request.headers.get("authorization"), verb, resource, ns,
                        request.path_params.get("name"))
        return ns

    def collection(resource: str):
        async def handle(request: Request):
            ns = request.path_params["ns"]
            if request.method == "POST":
                auth(request, "create", resource)
                obj = await request.json()
                created = store.create(ns, resource, obj)
                if resource == "statefulsets":
                    created.setdefault("status", {"replicas": 0})
                    kubelet.wake()
                return JSONResponse(created, status_code=201)
            auth(request, "list", resource)
            items = store.select(ns, resource, request.query_params.get("labelSelector"),
                                 request.query_params.get("fieldSelector"))
            return JSONResponse({"apiVersion": "v1", "kind": f"{resource.title()}List",
                                 "metadata": {"resourceVersion": str(next(store.version))},
                                 "items": items})
        return _answer(handle)

    def item(resource: str):
        async def handle(request: Request):
            ns, name = request.path_params["ns"], request.path_params["name"]
            if request.method == "GET":
                auth(request, "get", resource)
                return JSONResponse(store.get(ns, resource, name))
            if request.method == "PUT":
                auth(request, "update", resource)
                obj = store.replace(ns, resource, name, await request.json())
                kubelet.wake()
                return JSONResponse(obj)
            auth(request, "delete", resource)
            body = await request.body()
            options = json.loads(body) if body else {}
            if resource in ("statefulsets", "pods"):
                obj = kubelet.delete(ns, resource, name, options.get("propagationPolicy"))
            else:
                obj = store.remove(ns, resource, name)
            return JSONResponse(obj)
        return _answer(handle)

    def scale_of(sts: dict) -> dict:
        meta = sts["metadata"]
        labels = ",".join(f"{k}={v}" for k, v in
                          sts["spec"]["selector"].get("matchLabels", {}).items())
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                             "uid": meta["uid"], "resourceVersion": meta["resourceVersion"],
                             "creationTimestamp": meta["creationTimestamp"]},
                "spec": {"replicas": sts["spec"].get("replicas", 1)},
                "status": {"replicas": (sts.get("status") or {}).get("replicas", 0),
                           "selector": labels}}

    async def scale(request: Request):
        """``statefulsets/{name}/scale``: GET, and PATCH of ``spec.replicas``."""
        ns, name = request.path_params["ns"], request.path_params["name"]
        if request.method == "GET":
            auth(request, "get", "statefulsets/scale")
            return JSONResponse(scale_of(store.get(ns, "statefulsets", name)))
        auth(request, "patch", "statefulsets/scale")
        kind = request.headers.get("content-type", "").split(";")[0].strip()
        if kind not in MERGE_PATCHES:
            raise Refused(status(415, "UnsupportedMediaType",
                                 f"the stand-in takes merge patches of scale, not {kind!r}"))
        sts = store.get(ns, "statefulsets", name)
        replicas = ((await request.json()).get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise Refused(status(422, "Invalid", f'Scale.autoscaling "{name}" is invalid: '
                                                 f"spec.replicas: Invalid value: {replicas!r}"))
        sts["spec"]["replicas"] = replicas
        sts["metadata"]["resourceVersion"] = str(next(store.version))
        kubelet.wake()
        return JSONResponse(scale_of(sts))

    async def pod_log(request: Request):
        ns, name = request.path_params["ns"], request.path_params["name"]
        auth(request, "get", "pods/log")
        store.get(ns, "pods", name)
        text = kubelet.log(ns, name, previous=request.query_params.get("previous") == "true",
                           tail=request.query_params.get("tailLines"))
        if text is None:
            raise Refused(status(400, "BadRequest", f'previous terminated container "rh" in pod '
                                                    f'"{name}" not found'))
        return PlainTextResponse(text)

    async def eviction(request: Request):
        ns, name = request.path_params["ns"], request.path_params["name"]
        auth(request, "create", "pods/eviction")
        store.get(ns, "pods", name)
        kubelet.delete(ns, "pods", name, None)
        return JSONResponse(status(201, "", "", name=name) | {"status": "Success"},
                            status_code=201)

    async def control(request: Request):
        """The tests' controls: ``evict`` (node pressure) and ``oomkill`` a pod's container."""
        ns, name = request.path_params["ns"], request.path_params["name"]
        store.authorize(request.headers.get("authorization"), "update", "pods", ns)
        body = await request.json() if await request.body() else {}
        what = request.path_params["what"]
        if what == "evict":
            kubelet.evict(ns, name, body.get("message", "The node was low on resource: memory."))
        elif what == "oomkill":
            kubelet.oom_kill(ns, name)
        else:
            raise Refused(status(404, "NotFound", f"no control {what!r}"))
        return JSONResponse({"done": what})

    return [
        Route(f"{CORE}/secrets", collection("secrets"), methods=["GET", "POST"]),
        Route(f"{CORE}/secrets/{{name}}", item("secrets"), methods=["GET", "PUT", "DELETE"]),
        Route(f"{CORE}/services", collection("services"), methods=["GET", "POST"]),
        Route(f"{CORE}/services/{{name}}", item("services"), methods=["GET", "PUT", "DELETE"]),
        Route(f"{APPS}/statefulsets", collection("statefulsets"), methods=["GET", "POST"]),
        Route(f"{APPS}/statefulsets/{{name}}", item("statefulsets"),
              methods=["GET", "PUT", "DELETE"]),
        Route(f"{APPS}/statefulsets/{{name}}/scale", _answer(scale),
              methods=["GET", "PATCH"]),
        Route(f"{CORE}/configmaps", collection("configmaps"), methods=["GET", "POST"]),
        Route(f"{CORE}/configmaps/{{name}}", item("configmaps"), methods=["GET", "PUT", "DELETE"]),
        Route(f"{CORE}/serviceaccounts", collection("serviceaccounts"), methods=["GET", "POST"]),
        Route(f"{CORE}/serviceaccounts/{{name}}", item("serviceaccounts"),
              methods=["GET", "DELETE"]),
        Route(f"{RBAC}/roles", collection("roles"), methods=["GET", "POST"]),
        Route(f"{RBAC}/roles/{{name}}", item("roles"), methods=["GET", "DELETE"]),
        Route(f"{RBAC}/rolebindings", collection("rolebindings"), methods=["GET", "POST"]),
        Route(f"{RBAC}/rolebindings/{{name}}", item("rolebindings"), methods=["GET", "DELETE"]),
        Route(f"{CORE}/pods", collection("pods"), methods=["GET"]),
        Route(f"{CORE}/pods/{{name}}", item("pods"), methods=["GET", "DELETE"]),
        Route(f"{CORE}/pods/{{name}}/log", _answer(pod_log), methods=["GET"]),
        Route(f"{CORE}/pods/{{name}}/eviction", _answer(eviction), methods=["POST"]),
        WebSocketRoute(f"{CORE}/pods/{{name}}/portforward", portforward.endpoint(store, kubelet)),
        Route(f"{CORE}/events", collection("events"), methods=["GET"]),
        Route("/standin/namespaces/{ns}/pods/{name}/{what}", _answer(control),
              methods=["POST"]),
    ]
