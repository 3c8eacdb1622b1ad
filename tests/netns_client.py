"""HTTP calls from inside a host's namespace: a JSON list of {method, url, body?, headers?} on
stdin -> a JSON list of {status, body} on stdout (run under `ip netns exec`)."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request


def call(spec: dict) -> dict:
    data = json.dumps(spec["body"]).encode() if "body" in spec else None
    headers = {"content-type": "application/json", **spec.get("headers", {})}
    req = urllib.request.Request(spec["url"], data=data, headers=headers, method=spec.get("method", "GET"))
    try:
        with urllib.request.urlopen(req, timeout=spec.get("timeout", 180)) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    except OSError as err:
        return {"status": 0, "body": repr(err)}
    try:
        return {"status": status, "body": json.loads(raw or b"null")}
    except ValueError:
        return {"status": status, "body": raw.decode(errors="replace")}


if __name__ == "__main__":
    json.dump([call(spec) for spec in json.load(sys.stdin)], sys.stdout)
