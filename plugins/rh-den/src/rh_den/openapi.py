"""``/openapi.json``: the API's OpenAPI document, made from the route table of
:mod:`rh_den.api` so that the two cannot drift apart (the fuzz test drives the store from it)."""

from __future__ import annotations

import re

from rh_den.api import ROUTES

ERROR = {"type": "object", "properties": {"error": {"type": "object", "properties": {
    "kind": {"type": "string"}, "message": {"type": "string"}}}}}


def _schema(schema: dict) -> dict:
    """JSON Schema as OpenAPI 3.0 wants it: no type lists, ``nullable`` instead."""
    out = {k: v for k, v in schema.items() if k != "required" or isinstance(v, list)}
    kind = out.get("type")
    if isinstance(kind, list):
        out["type"] = next(k for k in kind if k != "null")
        out["nullable"] = "null" in kind
    if "properties" in out:
        out["properties"] = {k: _schema(v) for k, v in out["properties"].items()}
    return out


def _err(text: str) -> dict:
    return {"description": text, "content": {"application/json": {"schema": ERROR}}}


def document(version: str) -> dict:
    paths: dict[str, dict] = {}
    for api in ROUTES:
        path = re.sub(r"\{(\w+):path\}", r"{\1}", api.path)
        params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                  for n in re.findall(r"\{(\w+)", api.path)]
        params += [{"name": n, "in": "query", "required": bool(s.get("required")),
                    "schema": _schema(s)} for n, s in api.query.items()]
        op = {"summary": api.summary, "operationId": api.handler.__name__,
              "parameters": params,
              "responses": {str(api.status): {"description": "ok",
                                              "content": {"application/json": {"schema": {}}}},
                            "400": _err("bad request"), "401": _err("no token, or a token "
                                                                    "that is not accepted"),
                            "403": _err("not allowed"), "404": _err("not found"),
                            "409": _err("conflict"), "413": _err("body too large")}}
        if api.who != "anyone":
            op["security"] = [{"bearer": []}]
        if api.body is not None:
            op["requestBody"] = {"required": bool(api.body.get("required")),
                                 "content": {"application/json": {"schema": _schema(api.body)}}}
        paths.setdefault(path, {})[api.method.lower()] = op
    paths["/health"] = {"get": {"summary": "liveness", "operationId": "health",
                                "responses": {"200": {"description": "ok"}}}}
    return {"openapi": "3.0.3", "info": {"title": "rh den: the shared store", "version": version},
            "paths": paths,
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}}
