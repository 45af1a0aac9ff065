"""The deployment files, checked offline: the Dockerfile (hadolint, and the runtime stage's libraries against the
binary's NEEDED list), the kustomize overlays (built, then validated against the Kubernetes API schemas), the
KServe and Prometheus Operator resources (against their CRDs' schemas, as the projects' generated models carry
them), the Prometheus rules (promtool check and unit tests), the prometheus-adapter rules and the Grafana
dashboard (their PromQL parses and names metrics a real server exports), and yamllint over every YAML file. Each
checker is also shown to fail on a broken copy, so a pass means something. The tools come from the deploy venv
(.venv-deploy, scripts/requirements-deploy.txt).
"""
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import BINARY, ROOT, serve_copies
from http_util import get_json
from metrics_util import scrape

DEPLOY = ROOT / "deploy"
VENV = ROOT / ".venv-deploy" / "bin"
K8S_VERSION = "1.30.0"  # the oldest Kubernetes version EKS still supports in standard support
OVERLAYS = ["graviton", "x86"]
CRD_CHECK = ROOT / "tests" / "deploy" / "crd_schema_check.py"


def tool(name):
    path = VENV / name
    if not path.exists():
        pytest.fail(f"{path} is missing: `make deps` (scripts/setup-venv.sh .venv-deploy ...) installs it")
    return str(path)


def run(*args, **kw):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120, **kw)


def kustomize(path):
    r = run(tool("kubectl"), "kustomize", path)
    assert r.returncode == 0, r.stderr
    return r.stdout


def by_kind(docs):
    out = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return {k: v[0] if len(v) == 1 else v for k, v in out.items()}


def rules_file(tmp_path):
    """The PrometheusRule's groups as a plain Prometheus rules file (what promtool and a Prometheus without the
    operator read)."""
    spec = yaml.safe_load((DEPLOY / "base" / "prometheusrule.yaml").read_text())["spec"]
    path = tmp_path / "coreserve-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": spec["groups"]}, sort_keys=False))
    return path


# --- Dockerfile ---------------------------------------------------------------------------------------------

def test_hadolint_passes_and_catches_a_bad_dockerfile(tmp_path):
    r = run(tool("hadolint"), "--config", ROOT / ".hadolint.yaml", ROOT / "Dockerfile")
    assert r.returncode == 0, r.stdout + r.stderr
    bad = tmp_path / "Dockerfile"
    bad.write_text((ROOT / "Dockerfile").read_text().replace("--no-install-recommends", "")
                   .replace("ENTRYPOINT [\"/usr/local/bin/coreserve\", \"serve\", \"--config\", "
                            "\"/etc/coreserve/config.yaml\"]", "ENTRYPOINT /usr/local/bin/coreserve serve"))
    r = run(tool("hadolint"), "--config", ROOT / ".hadolint.yaml", bad)
    assert r.returncode != 0 and "DL3015" in r.stdout and "DL3025" in r.stdout, r.stdout


def dockerfile_runtime_packages():
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    runtime = text.split("\nFROM --platform=$TARGETPLATFORM ${RUNTIME_BASE}", 1)[1]
    install = re.search(r"apt-get install -y --no-install-recommends ([^&]+)&&", runtime).group(1)
    return install.split()


def test_runtime_stage_installs_every_library_the_binary_links():
    """The slim stage installs the packages that hold each NEEDED shared library of the binary (the host has
    the same Debian packages, as dependencies of the -dev ones the build uses): no missing library at start."""
    needed = re.findall(r"NEEDED\s+(\S+)", run("objdump", "-p", BINARY).stdout)
    assert needed
    packages = dockerfile_runtime_packages()
    files = set()
    for p in packages:
        listing = run("dpkg", "-L", p)
        assert listing.returncode == 0, f"{p} (named in the Dockerfile) is not a Debian package here: {listing.stderr}"
        files |= {Path(f).name for f in listing.stdout.split()}
    base = {"libc.so.6", "libm.so.6", "libgcc_s.so.1", "libstdc++.so.6"}  # in every Debian base image
    missing = [lib for lib in needed if lib not in files and lib not in base]
    assert not missing, f"the runtime stage lacks {missing} (installs {packages})"


# --- Kubernetes ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_and_validates_against_kubernetes_schemas(overlay, tmp_path):
    out = tmp_path / f"{overlay}.yaml"
    out.write_text(kustomize(DEPLOY / "overlays" / overlay))
    r = run(tool("kubernetes-validate"), "--strict", "-k", K8S_VERSION, out)
    assert r.returncode == 0, r.stdout + r.stderr
    docs = list(yaml.safe_load_all(out.read_text()))
    assert {d["kind"] for d in docs} == {"ConfigMap", "Service", "PersistentVolumeClaim", "Deployment",
                                         "PodDisruptionBudget", "HorizontalPodAutoscaler", "ServiceMonitor",
                                         "PrometheusRule"}
    # The Kubernetes schemas cover six kinds; the Prometheus Operator's two go to its CRDs' schema.
    assert r.stdout.count(" passed for resource ") == 6, r.stdout
    operator = tmp_path / "operator.yaml"
    operator.write_text(yaml.safe_dump_all([d for d in docs if d["apiVersion"] == "monitoring.coreos.com/v1"]))
    r = run(tool("python"), CRD_CHECK, operator)
    assert r.returncode == 0 and r.stdout.count(": ok") == 2, r.stdout + r.stderr


def test_schema_validation_catches_a_misspelled_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(kustomize(DEPLOY / "overlays" / "x86").replace("terminationGracePeriodSeconds",
                                                                  "terminationGracePeriod"))
    r = run(tool("kubernetes-validate"), "--strict", "-k", K8S_VERSION, bad)
    assert r.returncode != 0 and "terminationGracePeriod" in r.stdout + r.stderr


@pytest.mark.parametrize("overlay,arch", [("graviton", "arm64"), ("x86", "amd64")])
def test_overlay_is_consistent(overlay, arch):
    """What the schemas cannot see: Guaranteed QoS in whole cores, the node architecture, probes on the health
    routes, the shutdown budget, and names that must agree across objects."""
    docs = by_kind(yaml.safe_load_all(kustomize(DEPLOY / "overlays" / overlay)))
    deploy, service, config = docs["Deployment"], docs["Service"], docs["ConfigMap"]
    pod = deploy["spec"]["template"]
    (container,) = pod["spec"]["containers"]

    res = container["resources"]
    assert res["requests"] == res["limits"], "requests must equal limits (Guaranteed QoS)"
    assert re.fullmatch(r"[1-9][0-9]*", str(res["limits"]["cpu"])), "whole cores, so the CPU manager pins them"

    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    expr = terms["nodeSelectorTerms"][0]["matchExpressions"][0]
    assert (expr["key"], expr["operator"], expr["values"]) == ("kubernetes.io/arch", "In", [arch])

    for probe, path in [("startupProbe", "/v2/health/ready"), ("livenessProbe", "/v2/health/live"),
                        ("readinessProbe", "/v2/health/ready")]:
        assert container[probe]["httpGet"]["path"] == path
        assert container[probe]["httpGet"]["port"] in {p["name"] for p in container["ports"]}

    server_config = yaml.safe_load(config["data"]["config.yaml"])
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pre_stop + server_config["shutdown_grace_seconds"] < pod["spec"]["terminationGracePeriodSeconds"]
    assert {v["configMap"]["name"] for v in pod["spec"]["volumes"] if "configMap" in v} == {config["metadata"]["name"]}
    assert {(p["name"], p["containerPort"]) for p in container["ports"]} == {
        ("http", server_config["http"]["port"]), ("grpc", server_config["grpc"]["port"]),
        ("metrics", server_config["metrics"]["port"])}

    labels = pod["metadata"]["labels"]
    assert deploy["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= {p["name"] for p in container["ports"]}
    monitor = docs["ServiceMonitor"]["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert {e["port"] for e in monitor["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
    target = docs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deploy["metadata"]["name"])


# --- KServe -------------------------------------------------------------------------------------------------

def test_custom_resources_checker_catches_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((DEPLOY / "base" / "servicemonitor.yaml").read_text().replace("scrapeTimeout", "scrapeTimout"))
    r = run(tool("python"), CRD_CHECK, bad)
    assert r.returncode == 1 and "scrapeTimout: no such field" in r.stderr, r.stderr
    bad.write_text((DEPLOY / "base" / "prometheusrule.yaml").read_text().replace("groups:", "group:"))
    r = run(tool("python"), CRD_CHECK, bad)
    assert r.returncode == 1 and "spec.group: no such field" in r.stderr, r.stderr
    bad.write_text((DEPLOY / "base" / "prometheusrule.yaml").read_text().replace("for: 5m", "for: 5"))
    r = run(tool("python"), CRD_CHECK, bad)
    assert r.returncode == 1 and "'for')" in r.stderr, r.stderr


def test_kserve_resources_match_kserve_schema(tmp_path):
    kserve = DEPLOY / "kserve"
    r = run(tool("python"), CRD_CHECK, kserve / "servingruntime.yaml", kserve / "inferenceservice.yaml")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(": ok") == 2, r.stdout
    built = by_kind(yaml.safe_load_all(kustomize(DEPLOY / "kserve")))
    runtime, isvc = built["ServingRuntime"], built["InferenceService"]
    assert set(runtime["spec"]["protocolVersions"]) == {"v2", "grpc-v2"}
    assert {f["name"] for f in runtime["spec"]["supportedModelFormats"]} == {"onnx"}
    assert isvc["spec"]["predictor"]["model"]["runtime"] == runtime["metadata"]["name"]
    assert isvc["spec"]["predictor"]["model"]["modelFormat"]["name"] == "onnx"

    bad = tmp_path / "bad.yaml"
    bad.write_text((DEPLOY / "kserve" / "servingruntime.yaml").read_text()
                   .replace("supportedModelFormats", "supportedModelFormat"))
    r = run(tool("python"), CRD_CHECK, bad)
    assert r.returncode == 1 and "supportedModelFormat: no such field" in r.stderr, r.stderr
    bad.write_text((DEPLOY / "kserve" / "inferenceservice.yaml").read_text().replace("runtime: kserve-coreserve",
                                                                                     "runtime: [kserve-coreserve]"))
    r = run(tool("python"), CRD_CHECK, bad)
    assert r.returncode == 1 and "expected str" in r.stderr, r.stderr


# --- Prometheus and Grafana ---------------------------------------------------------------------------------

def test_alert_rules_pass_promtool_and_fire_in_its_unit_tests(tmp_path):
    rules = rules_file(tmp_path)
    r = run("promtool", "check", "rules", rules)
    assert r.returncode == 0, r.stdout + r.stderr
    shutil.copy(DEPLOY / "prometheus" / "alerts-test.yaml", tmp_path)
    r = run("promtool", "test", "rules", tmp_path / "alerts-test.yaml")
    assert r.returncode == 0, r.stdout + r.stderr
    # The unit tests fail when an alert's threshold moves: 9% errors no longer alert at a 10% threshold.
    spec = rules.read_text().replace("> 0.05", "> 0.1")
    rules.write_text(spec)
    r = run("promtool", "test", "rules", tmp_path / "alerts-test.yaml")
    assert r.returncode != 0 and "CoreserveErrorRateHigh" in r.stdout + r.stderr


def adapter_queries():
    """prometheus-adapter's metricsQuery templates, made concrete the way the adapter fills them in."""
    rules = yaml.safe_load((DEPLOY / "prometheus" / "adapter-rules.yaml").read_text())["rules"]
    out = []
    for rule in rules:
        series = re.match(r"\w+", rule["seriesQuery"]).group(0)
        q = (rule["metricsQuery"].replace("<<.Series>>", series)
             .replace("<<.LabelMatchers>>", 'namespace="ml",pod=~"coreserve-.*"').replace("<<.GroupBy>>", "pod"))
        out.append((rule["name"]["as"], q))
    return out


def dashboard_queries():
    dash = json.loads((DEPLOY / "grafana" / "coreserve-dashboard.json").read_text())
    out = []
    for panel in dash["panels"]:
        for t in panel["targets"]:
            # Grafana's variables, as it substitutes them (All = .*).
            out.append((panel["title"], t["expr"].replace("$namespace", ".*").replace("$model", ".*")
                        .replace("$__rate_interval", "1m")))
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            m = re.fullmatch(r"label_values\((.+), (\w+)\)", v["query"]["query"])
            assert m, v["query"]
            out.append((v["name"], m.group(1).replace("$namespace", ".*")))
    return dash, out


def test_adapter_and_dashboard_queries_parse(tmp_path):
    """Every query, as recording rules for promtool, which parses the PromQL."""
    dash, queries = dashboard_queries()
    assert {p["title"] for p in dash["panels"]} >= {
        "Throughput (inferences/s)", "Latency p50 / p95 / p99", "Queue time and compute time (mean per request)",
        "Batch size (rows per execution)", "Core-group busy fraction", "Errors (requests/s by reason)"}
    exprs = [q for _, q in adapter_queries()] + [q for _, q in queries]
    rules = {"groups": [{"name": "parse", "rules": [{"record": f"check:q{i}", "expr": e}
                                                   for i, e in enumerate(exprs)]}]}
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump(rules))
    r = run("promtool", "check", "rules", path)
    assert r.returncode == 0, r.stdout + r.stderr
    path.write_text(yaml.safe_dump({"groups": [{"name": "parse", "rules": [
        {"record": "check:bad", "expr": exprs[0].replace(")", "", 1)}]}]}))
    assert run("promtool", "check", "rules", path).returncode != 0


def test_hpa_metrics_come_from_adapter_rules():
    hpa = yaml.safe_load((DEPLOY / "base" / "hpa.yaml").read_text())
    wanted = {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"]}
    assert wanted == {name for name, _ in adapter_queries()}


def metric_names(expr):
    return set(re.findall(r"\bcoreserve_[a-z_]+", expr))


def test_every_query_names_metrics_the_server_exports(models_dir, tmp_path):
    """The alerts, the adapter rules and the dashboard against a real scrape, from a server whose model runs as
    a two-stage pipeline (so the stage series exist), after one inference and one rejected request (so the
    per-model series and a failure counter exist)."""
    server = serve_copies(models_dir, tmp_path, {"bert": ("bert_tiny", "pipeline: {stages: 2}\n")})
    try:
        request = {"inputs": [{"name": n, "datatype": "INT64", "shape": [1, 4], "data": d} for n, d in
                              [("input_ids", [1, 2, 3, 4]), ("attention_mask", [1, 1, 1, 1]),
                               ("token_type_ids", [0, 0, 0, 0])]]}
        status, body = get_json(server.http, "/v2/models/bert/infer", "POST", json.dumps(request).encode())
        assert status == 200, body
        request["inputs"][0]["datatype"] = "FP32"
        status, body = get_json(server.http, "/v2/models/bert/infer", "POST", json.dumps(request).encode())
        assert status == 400, body
        exported = set()
        for family in scrape(server).values():
            exported |= {s.name for s in family.samples}
    finally:
        assert server.stop() == 0, server.log()
    used = set()
    for group in yaml.safe_load(rules_file(tmp_path).read_text())["groups"]:
        for rule in group["rules"]:
            used |= metric_names(rule["expr"])
    for _, q in adapter_queries() + dashboard_queries()[1]:
        used |= metric_names(q)
    used -= {name for name, _ in adapter_queries()}  # the adapter's own output names
    assert used, "no metric names found"
    missing = sorted(used - exported)
    assert not missing, f"queried but not exported: {missing}"


def test_yamllint(tmp_path):
    files = [ROOT / ".yamllint", ROOT / ".hadolint.yaml", ROOT / "config", DEPLOY]
    r = run(tool("yamllint"), "--strict", "-c", ROOT / ".yamllint", *files)
    assert r.returncode == 0, r.stdout + r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: 1\na: 2\n")
    assert run(tool("yamllint"), "--strict", "-c", ROOT / ".yamllint", bad).returncode != 0
