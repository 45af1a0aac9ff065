"""The load generator of the load tests, for what perf_analyzer cannot express: an offered rate that does not
wait for answers (open loop), phases of different rates, and a check of every answer.

One asyncio process drives the server over HTTP (KServe v2 JSON, on a pool of blocking connections) or gRPC
(raw tensors, grpc.aio). Every request is
recorded with its start time, latency and outcome:
  ok        the answer matched the reference outputs of its input variant;
  corrupt   an answer whose outputs did not match (a wrong or mixed-up answer: never acceptable);
  rejected  HTTP 429 / RESOURCE_EXHAUSTED: the server's queue was full (overload's expected answer);
  refused   another clean error from the server (HTTP 4xx/5xx with a JSON error, a gRPC status);
  unreachable  no connection could be made (nothing listens: the server has stopped);
  lost      no answer on a connection made: it was reset or closed, or the client's timeout passed.
"""
import asyncio
import concurrent.futures
import http.client
import json
import threading
import time
from dataclasses import dataclass

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc

V2_TYPES = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64"}
NP_TYPES = {"FP32": np.float32, "INT64": np.int64}
OUTCOMES = ("ok", "corrupt", "rejected", "refused", "unreachable", "lost")


@dataclass
class Record:
    start: float    # seconds since the run began
    latency: float  # seconds
    outcome: str
    variant: int


class Workload:
    """A model, input variants and each variant's reference outputs (from ONNX Runtime): an answer is checked
    against the reference of the variant it was asked for, so an answer given to the wrong request shows.
    `references[v]` is a list of acceptable outputs (two while a model is reloaded with new weights)."""

    def __init__(self, model, variants, references, tolerance=1e-3):
        self.model, self.variants, self.references, self.tolerance = model, variants, references, tolerance
        self.json_bodies = [json.dumps({"inputs": [
            {"name": n, "datatype": V2_TYPES[a.dtype], "shape": list(a.shape), "data": a.ravel().tolist()}
            for n, a in v.items()]}).encode() for v in variants]
        self.grpc_requests = []
        for v in variants:
            r = service_pb2.ModelInferRequest(model_name=model)
            for n, a in v.items():
                r.inputs.add(name=n, datatype=V2_TYPES[a.dtype], shape=list(a.shape))
                r.raw_input_contents.append(np.ascontiguousarray(a).tobytes())
            self.grpc_requests.append(r)

    def matches(self, variant, got):
        for want in self.references[variant]:
            tol = self.tolerance * max(1.0, float(np.abs(want).max()))
            if got.shape == want.shape and float(np.abs(got - want).max()) <= tol:
                return True
        return False


class Client:
    """One protocol's connection pool to the server; `call(variant)` returns (outcome, seconds)."""

    def __init__(self, protocol, address, workload, timeout, reconnect=False):
        """`reconnect`: HTTP only, a new connection for every request (as clients without keep-alive do)."""
        self.protocol, self.address, self.w, self.timeout = protocol, address, workload, timeout
        self.reconnect = reconnect

    async def __aenter__(self):
        if self.protocol == "http":
            # Blocking http.client connections, one per worker thread: aiohttp took ~0.5 s to read a 330 KB JSON
            # answer here, which http.client reads in a few ms.
            self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=64)
            self.local = threading.local()
        else:
            self.channel = grpc.aio.insecure_channel(self.address, options=[
                ("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)])
            self.stub = service_pb2_grpc.GRPCInferenceServiceStub(self.channel)
        return self

    async def __aexit__(self, *exc):
        if self.protocol == "http":
            self.pool.shutdown(wait=True)
        else:
            await self.channel.close()

    async def call(self, variant):
        t0 = time.perf_counter()
        if self.protocol == "http":
            outcome = await asyncio.get_running_loop().run_in_executor(self.pool, self._http, variant)
        else:
            outcome = await self._grpc(variant)
        return outcome, time.perf_counter() - t0

    def _http(self, variant):
        conn = getattr(self.local, "conn", None)
        try:
            if conn is None:
                host, port = self.address.rsplit(":", 1)
                conn = self.local.conn = http.client.HTTPConnection(host, int(port), timeout=self.timeout)
                try:
                    conn.connect()
                except ConnectionRefusedError:
                    self.local.conn = None
                    return "unreachable"
            conn.request("POST", f"/v2/models/{self.w.model}/infer", body=self.w.json_bodies[variant],
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            body = r.read()
            if self.reconnect or r.getheader("Connection", "").lower() == "close":
                conn.close()
                self.local.conn = None
            if r.status == 429:
                return "rejected"
            if r.status != 200:
                json.loads(body)["error"]  # a clean error carries its reason; anything else raises (lost)
                return "refused"
            out = json.loads(body)["outputs"][0]
            got = np.array(out["data"], NP_TYPES[out["datatype"]]).reshape(out["shape"])
            return "ok" if self.w.matches(variant, got) else "corrupt"
        except (http.client.HTTPException, OSError, ValueError, KeyError):
            # ValueError, KeyError: a body that is not the JSON error every refusal carries
            if conn is not None:
                conn.close()
            self.local.conn = None
            return "lost"

    async def _grpc(self, variant):
        try:
            r = await self.stub.ModelInfer(self.w.grpc_requests[variant], timeout=self.timeout)
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                return "rejected"
            details = e.details() or ""
            if e.code() == grpc.StatusCode.UNAVAILABLE and ("connect" in details.lower() or "refused" in details):
                return "unreachable"
            if e.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED) or (
                    e.code() == grpc.StatusCode.UNAVAILABLE and not details.startswith("model")
                    and "shutting down" not in details):
                return "lost"  # the transport failed; the server's own UNAVAILABLE answers carry a reason
            return "refused"
        out = r.outputs[0]
        got = np.frombuffer(r.raw_output_contents[0], NP_TYPES[out.datatype]).reshape(list(out.shape))
        return "ok" if self.w.matches(variant, got) else "corrupt"


async def open_loop(client, phases, records, t0, max_in_flight=2048):
    """Offers requests at each phase's rate for its duration, without waiting for answers: phases are
    (seconds, requests per second). Arrivals are evenly spaced; past `max_in_flight` unanswered requests an
    arrival is recorded lost at once (the client's own bound, so an unanswering server cannot exhaust it)."""
    tasks, in_flight, n = [], 0, 0

    async def one(variant, start):
        nonlocal in_flight
        outcome, seconds = await client.call(variant)
        in_flight -= 1
        records.append(Record(start, seconds, outcome, variant))

    phase_start = time.perf_counter()
    for seconds, rate in phases:
        count = int(seconds * rate)
        for i in range(count):
            due = phase_start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            variant = n % len(client.w.variants)
            n += 1
            start = time.perf_counter() - t0
            if in_flight >= max_in_flight:
                records.append(Record(start, 0.0, "lost", variant))
                continue
            in_flight += 1
            tasks.append(asyncio.create_task(one(variant, start)))
        phase_start += seconds
    await asyncio.gather(*tasks)


async def closed_loop(client, concurrency, seconds, records, t0):
    """`concurrency` callers, each sending its next request when the last is answered, for `seconds`."""
    stop = time.perf_counter() + seconds

    async def caller(k):
        i = k
        while time.perf_counter() < stop:
            variant = i % len(client.w.variants)
            i += concurrency
            start = time.perf_counter() - t0
            outcome, latency = await client.call(variant)
            records.append(Record(start, latency, outcome, variant))

    await asyncio.gather(*(caller(k) for k in range(concurrency)))


def summarize(records, since=0.0, until=float("inf")):
    """Counts per outcome and latency percentiles (ms) of the answered-ok requests started in [since, until)."""
    chosen = [r for r in records if since <= r.start < until]
    counts = {o: sum(r.outcome == o for r in chosen) for o in OUTCOMES}
    ok = np.array([r.latency for r in chosen if r.outcome == "ok"]) * 1e3
    rejected = np.array([r.latency for r in chosen if r.outcome == "rejected"]) * 1e3
    span = max(1e-9, min(until, max((r.start for r in chosen), default=0)) - since) if chosen else 1e-9
    pct = lambda a, q: float(np.percentile(a, q)) if len(a) else float("nan")  # noqa: E731
    return {"requests": len(chosen), **counts, "ok_per_s": counts["ok"] / span if chosen else 0.0,
            "p50_ms": pct(ok, 50), "p95_ms": pct(ok, 95), "p99_ms": pct(ok, 99),
            "rejected_p99_ms": pct(rejected, 99)}
