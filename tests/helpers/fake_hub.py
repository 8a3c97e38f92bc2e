"""A minimal Hugging Face Hub on 127.0.0.1 for weight tests (real HTTP, real huggingface_hub client).

Download side: ``HEAD``/``GET /{repo_id}/resolve/{revision}/{filename}`` with the headers
huggingface_hub reads (``X-Repo-Commit``, ``ETag``/``X-Linked-Etag`` = sha256 as for LFS files,
``Content-Length``) and the Hub's error codes (``X-Error-Code``: RepoNotFound, RevisionNotFound,
EntryNotFound). Upload side (what ``HfApi.create_repo`` + ``upload_folder`` call for small files):
``POST /api/repos/create``, ``/api/validate-yaml``, ``/api/models/{repo}/preupload/{rev}`` (answers
"regular" upload mode) and ``/api/models/{repo}/commit/{rev}`` (ndjson with base64 file contents).
Every request is logged, so tests can count them. Faults can be injected per file: tampered bytes
(served content differs from the advertised sha256), truncated bodies, a trickle (the body sent a few
bytes at a time, slowly) and silence (the request is accepted and never answered).
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import re
import threading
import time
import uuid
from typing import Dict, List, Optional, Tuple

import pytest

_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_API_INFO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+?)(?:/revision/(?P<rev>[^/?]+))?$")
_API_REPO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/(?P<op>preupload|commit)/(?P<rev>[^/?]+)")


class FakeHub:
    """State of the fake Hub: repositories of commits of files, request log and injected faults."""

    def __init__(self):
        self.repos: Dict[str, dict] = {}
        self.requests: List[Tuple[str, str]] = []
        self.tampered: Dict[Tuple[str, str], bytes] = {}
        self.truncated: Dict[Tuple[str, str], int] = {}
        self.trickled: Dict[Tuple[str, str], float] = {}
        self.silent = False
        self.released = threading.Event()
        self.lock = threading.Lock()
        self.server: Optional[http.server.ThreadingHTTPServer] = None

    # -- content -----------------------------------------------------------------------------
    def commit(self, repo_id: str, files: Dict[str, bytes], commit: Optional[str] = None) -> str:
        """Add a commit with `files` (on top of the previous main) to `repo_id`; returns its 40-hex id."""
        with self.lock:
            repo = self.repos.setdefault(repo_id, {"commits": {}, "main": None})
            previous = dict(repo["commits"].get(repo["main"], {}))
            previous.update(files)
            commit = commit or hashlib.sha1(uuid.uuid4().bytes).hexdigest()
            repo["commits"][commit] = previous
            repo["main"] = commit
            return commit

    def tamper(self, repo_id: str, filename: str, served: bytes) -> None:
        """Serve `served` for the file while still advertising the sha256 of the real content."""
        self.tampered[(repo_id, filename)] = served

    def truncate(self, repo_id: str, filename: str, keep_bytes: int) -> None:
        """GET returns only the first `keep_bytes` bytes (HEAD still reports the full size)."""
        self.truncated[(repo_id, filename)] = keep_bytes

    def trickle(self, repo_id: str, filename: str, seconds_per_chunk: float) -> None:
        """GET sends the body 16 bytes at a time, waiting `seconds_per_chunk` before each chunk."""
        self.trickled[(repo_id, filename)] = seconds_per_chunk

    def go_silent(self) -> None:
        """Accept every later file request and never answer it (until the server stops)."""
        self.silent = True

    def count(self, method: Optional[str] = None) -> int:
        """File requests (``/resolve/``) received so far, of one method or all.

        huggingface_hub also fetches ``/api/agent-harnesses`` once a day for its user agent; that
        request is logged in `requests` but not counted here.
        """
        return sum(1 for m, path in self.requests if "/resolve/" in path and (method is None or m == method))

    @property
    def endpoint(self) -> str:
        """Base URL of the running server."""
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    # -- server ------------------------------------------------------------------------------
    def start(self) -> "FakeHub":
        """Serve on a free port of 127.0.0.1 in a daemon thread."""
        hub = self

        class Handler(_Handler):
            state = hub

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Shut the server down once the downloads a test abandoned have ended (at most 10 s).

        keras_resnets abandons a download at its deadline and its thread lives on. Released, a silent
        request gets a 404 and a trickle the rest of its body, which ends that thread. Closing the port
        under it instead made huggingface_hub retry, get a connection error and close its shared HTTP
        client, under whatever download a later test in this process had in flight (a flaky ReadError).
        """
        self.released.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(
            thread.name == "keras-resnets-download" and thread.is_alive() for thread in threading.enumerate()
        ):
            time.sleep(0.05)
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
    state: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # Keep test output quiet.
        pass

    def _send(self, status: int, headers: Dict[str, str], body: bytes = b"", head_only: bool = False):
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head_only and body:
            self.wfile.write(body)

    def _json(self, status: int, payload, extra_headers=None):
        body = json.dumps(payload).encode()
        self._send(status, {"Content-Type": "application/json", **(extra_headers or {})}, body)

    def _resolve(self, head_only: bool):
        state = self.state
        state.requests.append((self.command, self.path))
        match = _RESOLVE.match(self.path.split("?")[0])
        if match is None:
            # E.g. huggingface_hub's once-per-process /api/agent-harnesses request; never silent, so that a
            # silent Hub holds the file request itself whether or not this process has asked before.
            return self._json(404, {"error": "unknown route"})
        if state.silent:
            state.released.wait()
            return self._send(404, {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Hub stopped"},
                              b'{"error":"Hub stopped"}', head_only)
        repo_id, revision, filename = match["repo"], match["rev"], match["path"]
        repo = state.repos.get(repo_id)
        if repo is None:
            return self._send(401, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"},
                              b'{"error":"Repository not found"}', head_only)
        commit = repo["main"] if revision == "main" else revision
        if commit not in repo["commits"]:
            return self._send(404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"},
                              b'{"error":"Invalid rev id"}', head_only)
        files = repo["commits"][commit]
        if filename not in files:
            return self._send(404, {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found",
                                    "X-Repo-Commit": commit}, b'{"error":"Entry not found"}', head_only)
        content = files[filename]
        etag = hashlib.sha256(content).hexdigest()
        served = state.tampered.get((repo_id, filename), content)
        headers = {"X-Repo-Commit": commit, "ETag": f'"{etag}"', "X-Linked-Etag": f'"{etag}"',
                   "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        if head_only:
            return self._send(200, dict(headers, **{"Content-Length": str(len(content))}), b"", True)
        keep = state.truncated.get((repo_id, filename))
        if keep is not None:
            served = served[:keep]
        delay = state.trickled.get((repo_id, filename))
        if delay is None:
            return self._send(200, dict(headers, **{"Content-Length": str(len(served))}), served)
        self._send(200, dict(headers, **{"Content-Length": str(len(served))}), b"", head_only=True)
        for start in range(0, len(served), 16):
            released = state.released.wait(delay)  # Released: the rest at once.
            try:
                self.wfile.write(served[start:] if released else served[start:start + 16])
                self.wfile.flush()
            except OSError:  # The client gave up.
                return
            if released:
                return

    def do_HEAD(self):  # noqa: N802 (http.server naming)
        self._resolve(head_only=True)

    def do_GET(self):  # noqa: N802
        info = _API_INFO.match(self.path.split("?")[0])
        if info is not None:
            return self._model_info(info["repo"], info["rev"] or "main")
        self._resolve(head_only=False)

    def _model_info(self, repo_id, revision):
        """``GET /api/models/{repo}[/revision/{rev}]`` with files metadata (what HfApi.model_info reads)."""
        self.state.requests.append((self.command, self.path))
        repo = self.state.repos.get(repo_id)
        commit = None if repo is None else (repo["main"] if revision == "main" else revision)
        if repo is None or commit not in repo["commits"]:
            return self._send(404, {"X-Error-Code": "RepoNotFound"}, b'{"error":"Repository not found"}')
        siblings = [
            {"rfilename": name, "size": len(content), "blobId": hashlib.sha1(content).hexdigest(),
             "lfs": {"sha256": hashlib.sha256(content).hexdigest(), "size": len(content), "pointerSize": 134}}
            for name, content in repo["commits"][commit].items()
        ]
        self._json(200, {"id": repo_id, "modelId": repo_id, "sha": commit, "siblings": siblings, "private": False})

    def do_POST(self):  # noqa: N802
        state = self.state
        state.requests.append((self.command, self.path))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?")[0]
        if path == "/api/repos/create":
            payload = json.loads(body)
            repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
            if repo_id in state.repos:
                return self._json(409, {"error": "You already created this model repo"})
            state.commit(repo_id, {".gitattributes": b"*.h5 filter=lfs diff=lfs merge=lfs -text\n"})
            return self._json(200, {"url": f"{state.endpoint}/{repo_id}", "name": repo_id})
        if path == "/api/validate-yaml":
            return self._json(200, {"errors": [], "warnings": []})
        match = _API_REPO.match(path)
        if match is None or match["repo"] not in state.repos:
            return self._json(404, {"error": f"unknown route or repo: {path}"})
        if match["op"] == "preupload":
            files = json.loads(body)["files"]
            return self._json(200, {"files": [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None} for f in files
            ]})
        added = {}
        for line in body.splitlines():
            item = json.loads(line)
            if item["key"] == "file":
                added[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            elif item["key"] != "header":
                return self._json(400, {"error": f"fake hub does not support {item['key']}"})
        commit = state.commit(match["repo"], added)
        return self._json(200, {"commitUrl": f"{state.endpoint}/{match['repo']}/commit/{commit}",
                                "commitOid": commit, "pullRequestUrl": None})


def serve_weights(hub: FakeHub, record, content: bytes, pinned: bool = True):
    """Publish `content` as `record`'s file on `hub`; returns the record re-pinned to that commit.

    With ``pinned=False`` the returned record keeps ``revision=None``/``sha256=None`` (verified
    against the ETag at download time, like the registry's unpinned records).
    """
    import dataclasses
    import hashlib

    commit = hub.commit(record.repo_id, {record.filename: content, "config.json": b"{}"})
    if not pinned:
        return dataclasses.replace(record, revision=None, sha256=None,
                                   pin_note=record.pin_note or "unpinned test record")
    return dataclasses.replace(record, revision=commit, sha256=hashlib.sha256(content).hexdigest(), pin_note="")


def fake_hub_environment(hub: FakeHub, tmp_path, monkeypatch) -> None:
    """Point huggingface_hub (already imported: patch its constants) and keras_resnets' cache at `hub`/`tmp_path`."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(tmp_path / "hf-home" / ".agent_harnesses.json"))
    monkeypatch.setenv("KERAS_RESNETS_CACHE", str(tmp_path / "keras-resnets-cache"))


def subprocess_environment(hub: FakeHub, tmp_path) -> dict:
    """Environment variables giving a child process the same fake Hub and caches (read at import)."""
    import os
    import pathlib

    env = dict(os.environ)
    env.update(
        HF_ENDPOINT=hub.endpoint,
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_CACHE=str(tmp_path / "hf-cache"),
        KERAS_RESNETS_CACHE=str(tmp_path / "keras-resnets-cache"),
        HF_HUB_OFFLINE="0",
        PYTHONPATH=os.pathsep.join([str(pathlib.Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")]),
    )
    return env


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A running FakeHub that huggingface_hub in this process talks to (stopped afterwards)."""
    server = FakeHub().start()
    fake_hub_environment(server, tmp_path, monkeypatch)
    yield server
    server.stop()
