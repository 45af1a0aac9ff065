"""Checks custom resources against their CRDs' schemas, as the projects' generated Python models carry them.

KServe (ServingRuntime, InferenceService): the SDK's model classes (kserve.models, generated from the CRDs'
OpenAPI) and the Kubernetes client's (for the core types they embed: V1Container, V1ObjectMeta...) list each
object's fields with their types (`openapi_types`) and JSON names (`attribute_map`). Every field of a document
must exist there with a value of the declared type, and each object is built through its class, whose
constructor rejects a missing required field or a value outside an enum.

Prometheus Operator (ServiceMonitor, PrometheusRule): cloudcoil's pydantic models of the operator's CRDs check
types and required fields; a field they drop while parsing is a field the schema does not have.

Unknown fields fail in both, unlike kubectl's lenient decoding.

usage: python crd_schema_check.py FILE.yaml ...   (exit 0 when every document passes; errors on stderr)
Runs in the deploy venv (.venv-deploy), where kserve is installed without its server dependencies.
"""
import importlib.util
import re
import sys
import types

import yaml

# Import kserve.models without kserve/__init__.py, which starts pulling in the model server (FastAPI, ...).
_spec = importlib.util.find_spec("kserve")
_pkg = types.ModuleType("kserve")
_pkg.__path__ = list(_spec.submodule_search_locations)
sys.modules["kserve"] = _pkg
import kserve.models as kserve_models  # noqa: E402
import kubernetes.client.models as k8s_models  # noqa: E402
import pydantic  # noqa: E402
from cloudcoil.models.prometheus_operator import v1 as operator_v1  # noqa: E402

KINDS = {
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): "V1alpha1ClusterServingRuntime",
    ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService",
}
OPERATOR_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): operator_v1.ServiceMonitor,
    ("monitoring.coreos.com/v1", "PrometheusRule"): operator_v1.PrometheusRule,
}
PRIMITIVES = {"str": (str,), "int": (int,), "bool": (bool,), "float": (int, float), "object": (object,),
              "datetime": (str,), "date": (str,)}


def model_class(name):
    return getattr(kserve_models, name, None) or getattr(k8s_models, name, None)


def build(type_name, value, path, errors):
    """Returns `value` built as `type_name`, appending every mismatch to `errors`."""
    # kserve writes list[T] and dict(K, V); the Kubernetes client List[T] and Dict[K, V].
    m = re.fullmatch(r"[lL]ist\[(.+)\]", type_name)
    if m:
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list, got {type(value).__name__}")
            return None
        return [build(m.group(1), v, f"{path}[{i}]", errors) for i, v in enumerate(value)]
    m = re.fullmatch(r"[dD]ict[(\[](\w+), (.+)[)\]]", type_name)
    if m:
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a map, got {type(value).__name__}")
            return None
        return {k: build(m.group(2), v, f"{path}.{k}", errors) for k, v in value.items()}
    if type_name in PRIMITIVES:
        ok = isinstance(value, PRIMITIVES[type_name]) and not (type_name == "int" and isinstance(value, bool))
        if not ok:
            errors.append(f"{path}: expected {type_name}, got {type(value).__name__} {value!r}")
        return value
    cls = model_class(type_name)
    if cls is None:
        errors.append(f"{path}: the schema names type {type_name}, which neither SDK defines")
        return None
    if type_name == "ResourceQuantity" or not hasattr(cls, "openapi_types"):
        return value
    if not isinstance(value, dict):
        errors.append(f"{path}: expected an object ({type_name}), got {type(value).__name__}")
        return None
    json_to_attr = {j: a for a, j in cls.attribute_map.items()}
    kwargs = {}
    for key, v in value.items():
        attr = json_to_attr.get(key)
        if attr is None:
            errors.append(f"{path}.{key}: no such field in {type_name} (fields: {', '.join(sorted(json_to_attr))})")
            continue
        kwargs[attr] = build(cls.openapi_types[attr], v, f"{path}.{key}", errors)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:
        errors.append(f"{path}: {type_name}: {e}")
        return None


def dropped_fields(given, parsed, path):
    """The keys of `given` that the parsed model no longer has: fields its schema does not know."""
    if isinstance(given, dict) and isinstance(parsed, dict):
        out = [f"{path}.{k}: no such field in the schema" for k in given if k not in parsed]
        for k in given:
            if k in parsed:
                out += dropped_fields(given[k], parsed[k], f"{path}.{k}")
        return out
    if isinstance(given, list) and isinstance(parsed, list):
        return [e for i, (g, p) in enumerate(zip(given, parsed)) for e in dropped_fields(g, p, f"{path}[{i}]")]
    return []


def check_operator(model, doc, kind):
    try:
        parsed = model.model_validate(doc)
    except pydantic.ValidationError as e:
        return [f"{kind}: {err['loc']}: {err['msg']}" for err in e.errors()]
    return dropped_fields(doc, parsed.model_dump(by_alias=True, exclude_unset=True, mode="json"), kind)


def check(doc):
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in OPERATOR_KINDS:
        return check_operator(OPERATOR_KINDS[key], doc, key[1])
    if key not in KINDS:
        return [f"not a custom resource this check knows: apiVersion {key[0]}, kind {key[1]}"]
    errors = []
    build(KINDS[key], doc, key[1], errors)
    return errors


def main(paths):
    failed = False
    for path in paths:
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc is None:
                    continue
                errors = check(doc)
                name = f"{path}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
                for e in errors:
                    print(f"{name}: {e}", file=sys.stderr)
                failed |= bool(errors)
                if not errors:
                    print(f"{name}: ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
