"""``/openapi.json``: the OpenAPI document of the server's routes (written by hand: it is the
contract; the fuzz test drives the server from it)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from rh_core import __version__
from rh_core.plugin import AccessLevel
from rh_server.auth import Auth
from rh_server.web import JSONRoute, guarded


def routes(auth: Auth) -> list[JSONRoute]:
    document = openapi_document(__version__)

    async def openapi(request: Request):
        auth.check(request, "*", AccessLevel.READ)
        return JSONResponse(document)

    return [JSONRoute("/openapi.json", guarded(openapi), methods=["GET"])]


def _err(desc: str) -> dict:
    return {"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def openapi_document(version: str) -> dict:
    name = {"name": "name", "in": "path", "required": True,
            "schema": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_\\-]{0,127}$"}}
    method = {"name": "method", "in": "path", "required": True, "schema": {"type": "string"}}
    key = {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}
    flags = [
        {"name": f, "in": "query", "required": False, "schema": {"type": "string", "enum": ["0", "1"]},
         "description": d}
        for f, d in [("rh_async", "keep the result on the cluster; answer a run key"),
                     ("rh_stream", "stream logs and generator items while the call runs"),
                     ("rh_enqueue", "run after earlier enqueued calls of this name"),
                     ("rh_map", "the pickled body holds chunks of inputs to map over"),
                     ("rh_shm", "large pickled buffers may go through the server's shared memory")]
    ] + [
        {"name": "rh_run_key", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "the key to keep an async run under"},
        {"name": "rh_refs", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "comma-separated run keys whose results the pickled arguments refer to"},
        {"name": "rh_offsets", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "JSON list: index of the first input of each map chunk"},
    ]
    folder_path = {"name": "path", "in": "query", "required": True, "schema": {"type": "string"},
                   "description": "a path of the node: ~ expanded, relative to the server user's home"}
    call_ok = {"description": "the result (JSON for JSON callers)",
               "content": {"application/json": {"schema": {}}}}
    errors = {"400": _err("bad request"), "401": _err("no or malformed token"),
              "403": _err("token without access"), "404": _err("no such function or method"),
              "413": _err("the body is over this caller's limit"),
              "429": _err("too many requests with invalid tokens from this address"),
              "500": _err("the user's code raised; the error carries its remote traceback")}
    return {
        "openapi": "3.0.3",
        "info": {"title": "rh server", "version": version},
        "paths": {
            "/health": {"get": {"summary": "liveness and version (no auth)",
                                "responses": {"200": {"description": "ok"}}}},
            "/restart": {"post": {
                "summary": "stop, to be started again by the server's supervisor (owner only)",
                "responses": {"202": {"description": "stopping; exits with code 75"},
                              "409": _err("no supervisor runs this server")}}},
            "/status": {"get": {"summary": "envs, workers, uptime, versions",
                                "responses": {"200": {"description": "status"}}}},
            "/keys": {"get": {"summary": "names served and run keys held",
                              "responses": {"200": {"description": "keys"}}}},
            "/logs": {"get": {"summary": "tail of the server's own log, or its access log (write access)",
                              "parameters": [{"name": "access", "in": "query", "required": False,
                                              "schema": {"type": "string", "enum": ["0", "1"]},
                                              "description": "the access log instead"}],
                              "responses": {"200": {"description": "log text"}}}},
            "/runs": {"get": {"summary": "runs kept on the cluster",
                              "responses": {"200": {"description": "runs"}}}},
            "/runs/{key}": {
                "get": {"summary": "result of a run (waits for it)", "parameters": [key],
                        "responses": {"200": call_ok, "404": _err("no such run")}},
                "delete": {"summary": "forget a run's result", "parameters": [key],
                           "responses": {"200": {"description": "deleted"}, "404": _err("no such run")}},
            },
            "/objects": {"get": {"summary": "objects kept on the cluster (read on *)",
                                 "responses": {"200": {"description": "objects"}}}},
            "/objects/{key}": {
                "get": {"summary": "an object (JSON, or pickle to a pickle caller)",
                        "parameters": [key], "responses": {"200": call_ok, "404": _err("none"),
                                                           "406": _err("pickled")}},
                "put": {"summary": "keep an object under the key (write)", "parameters": [key],
                        "requestBody": {"content": {
                            "application/json": {"schema": {}},
                            "application/x-rh-pickle": {"schema": {"type": "string",
                                                                   "format": "binary"}}}},
                        "responses": {"200": {"description": "kept"}, **errors}},
                "delete": {"summary": "delete an object (write)", "parameters": [key],
                           "responses": {"200": {"description": "deleted"}, "404": _err("none")}},
            },
            "/commands": {"post": {
                "summary": "shell commands or Python on the node (write on *)",
                "requestBody": {"content": {"application/json": {"schema": {
                    "type": "object", "required": ["commands"], "properties": {
                        "commands": {"type": "array", "items": {"type": "string"}},
                        "python": {"type": "boolean"}, "setup": {"type": "boolean"},
                        "env": {"type": "string"}, "timeout": {"type": "number"}}}}}},
                "responses": {"200": {"description": "results"}, **errors}}},
            "/secrets/{name}": {"put": {
                "summary": "write a secret's files in the server user's home (0600) and give its variables to an env's workers (write on *); the values are never answered",
                "parameters": [{"name": "name", "in": "path", "required": True,
                                "schema": {"type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9_.\\-]{0,99}$"}}],
                "requestBody": {"content": {"application/json": {"schema": {
                    "type": "object", "properties": {
                        "files": {"type": "array", "items": {"type": "object", "required": ["path"], "properties": {
                            "path": {"type": "string"}, "content": {"type": "string"},
                            "ini": {"type": "object", "additionalProperties": {
                                "type": "object", "additionalProperties": {"type": "string"}}}}}},
                        "env": {"type": "string"},
                        "env_vars": {"type": "object", "additionalProperties": {"type": "string"}},
                        "path_vars": {"type": "object", "additionalProperties": {"type": "string"}}}}}}},
                "responses": {"200": {"description": "{name, files, env, env_vars}: the files written and the variable names"},
                              **errors}}},
            "/folder/tar": {
                "get": {"summary": "a folder or file of the node as a tar stream followed by its SHA-256 (write on *)",
                        "parameters": [folder_path],
                        "responses": {"200": {"description": "the stream", "content": {"application/x-rh-tar": {"schema": {"type": "string", "format": "binary"}}}},
                                      "404": _err("no such path"), **errors}},
                "put": {"summary": "extract a tar stream (and its SHA-256) into a folder of the node (write on *)",
                        "parameters": [folder_path, {"name": "overwrite", "in": "query", "required": False,
                                                     "schema": {"type": "string", "enum": ["0", "1"]},
                                                     "description": "replace files already there"}],
                        "requestBody": {"content": {"application/x-rh-tar": {"schema": {"type": "string", "format": "binary"}}}},
                        "responses": {"200": {"description": "{path, files, bytes}"},
                                      "409": _err("a file is there and overwrite is not set"),
                                      "507": _err("the disk is full"), **errors}},
            },
            "/folder/{op}": {"post": {
                "summary": "resolve, ls, mkdir, mv, copy or rm a path of the node (write on *)",
                "parameters": [{"name": "op", "in": "path", "required": True, "schema": {"type": "string"}}],
                "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/FolderOp"}}}},
                "responses": {"200": {"description": "the operation's answer"},
                              "404": _err("no such path or operation"),
                              "409": _err("the destination exists"), **errors}}},
            "/runs/{key}/cancel": {"post": {
                "summary": "stop a run, or a call running now (write on its function)",
                "parameters": [key],
                "responses": {"200": {"description": "{run_key, cancelled, status}"},
                              "404": _err("no such run")}}},
            "/runs/{key}/logs": {"get": {"summary": "stream a run's stdout/stderr", "parameters": [key],
                                         "responses": {"200": {"description": "text"},
                                                       "404": _err("no such run")}}},
            "/auth/tokens": {
                "post": {"summary": "mint a token for another user (owner only; shown once)",
                         "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Grant"}}}},
                         "responses": {"201": {"description": "the token and its grant"},
                                       "400": _err("bad grant"), "401": _err("no token"),
                                       "403": _err("not the owner")}},
                "get": {"summary": "tokens given (owner only; never the tokens themselves)",
                        "responses": {"200": {"description": "tokens"}, "401": _err("no token"),
                                      "403": _err("not the owner")}},
            },
            "/auth/tokens/{who}": {
                "delete": {"summary": "revoke a user's tokens, or one by id (owner only)",
                           "parameters": [{"name": "who", "in": "path", "required": True,
                                           "schema": {"type": "string"}}],
                           "responses": {"200": {"description": "revoked"}, "404": _err("none"),
                                         "401": _err("no token"), "403": _err("not the owner")}},
            },
            "/{name}": {
                "put": {"summary": "serve a function, class or instance under a name (write)",
                        "parameters": [name],
                        "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Put"}}}},
                        "responses": {"200": {"description": "served"}, "409": _err("name taken"),
                                      "422": _err("the code failed to load"), **errors}},
                "delete": {"summary": "stop serving a name (write)", "parameters": [name],
                           "responses": {"200": {"description": "deleted"}, **errors}},
                "patch": {"summary": "rename a served class (write on both names)",
                          "parameters": [name],
                          "requestBody": {"content": {"application/json": {"schema": {
                              "type": "object", "required": ["rename"],
                              "properties": {"rename": {"type": "string"}}}}}},
                          "responses": {"200": {"description": "renamed"},
                                        "409": _err("the new name is taken"), **errors}},
            },
            "/{name}/{method}": {
                "get": {"summary": "call with query parameters as keyword arguments (JSON values)",
                        "parameters": [name, method, *flags],
                        "responses": {"200": call_ok, "202": {"description": "run key (rh_async)"}, **errors}},
                "post": {"summary": "call with a JSON body ({args, kwargs}) or a pickled body",
                         "parameters": [name, method, *flags],
                         "requestBody": {"content": {
                             "application/json": {"schema": {"$ref": "#/components/schemas/Args"}},
                             "application/x-rh-pickle": {"schema": {"type": "string", "format": "binary"}}}},
                         "responses": {"200": call_ok, "202": {"description": "run key (rh_async)"}, **errors}},
            },
        },
        "components": {
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                    "kind": {"type": "string"}, "message": {"type": "string"},
                    "type": {"type": "string"}, "traceback": {"type": "string"}}}}},
                "Grant": {"type": "object", "required": ["user"], "properties": {
                    "user": {"type": "string"},
                    "access": {"type": "string", "enum": ["read", "write"]},
                    "resources": {"type": "array", "items": {"type": "string"}},
                    "expires_in": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 3153600000,
                                   "description": "seconds until the token stops working"}}},
                "FolderOp": {"type": "object", "properties": {
                    "path": {"type": "string"}, "dest": {"type": "string"},
                    "name": {"type": "string", "description": "resolve without a path: the default place <rh home>/data/NAME"},
                    "names": {"type": "array", "items": {"type": "string"}},
                    "overwrite": {"type": "boolean"}, "walk": {"type": "boolean"}}},
                "Args": {"type": "object", "properties": {"args": {"type": "array", "items": {}},
                                                          "kwargs": {"type": "object"}}},
                "Put": {"type": "object", "required": ["kind"], "properties": {
                    "kind": {"type": "string", "enum": ["function", "class", "instance"]},
                    "pointer": {"type": "object", "properties": {
                        "module": {"type": "string"}, "qualname": {"type": "string"},
                        "root": {"type": "string"}}},
                    "code": {"type": "string", "description": "base64 cloudpickle"},
                    "env": {"type": "object"}, "replace": {"type": "boolean"}}},
            }
        },
    }
