"""Plain HTTP helpers over the standard library (no client of ours in the way)."""
import json
import urllib.error
import urllib.request


def get(address, path, method="GET", body=None, headers=None):
    """Returns (status, headers, body bytes) without raising on HTTP error statuses."""
    req = urllib.request.Request(f"http://{address}{path}", method=method, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def get_json(address, path, method="GET", body=None):
    status, headers, data = get(address, path, method, body)
    return status, json.loads(data) if data else None
