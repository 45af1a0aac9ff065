"""/metrics as the Prometheus client's own parser reads it."""
from prometheus_client.parser import text_string_to_metric_families

from http_util import get


def scrape(server):
    status, headers, body = get(server.metrics, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def value(families, name, **labels):
    for family in families.values():
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise KeyError(f"{name} {labels}")
