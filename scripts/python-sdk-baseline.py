#!/usr/bin/env python3
"""The Python OpenTelemetry SDK recording the load harness's LLM span (BENCHMARKS.md, "Against
the Python SDK", issue #13): the same name, kind and attributes (operation, provider, request
model, user, feature, input/output/cached token counts), ended at once, through the SDK's
BatchSpanProcessor and OTLP/gRPC exporter to a receiver. Prints one JSON line: spans, the
process's CPU seconds and CPU per span, and what the SDK dropped is not visible (its count is
private), so the receiver's count is the truth.

    python3 scripts/python-sdk-baseline.py --spans 100000 --rate 5000 --endpoint http://127.0.0.1:4399

`--pace burst` (the default) sleeps only when a millisecond or more ahead; `--pace per-span`
wakes once per span as the load harness does by default (its `--pace` flag offers both).
`--sdk none` runs the same loop with the API's no-op tracer: the loop's own cost, to
subtract from a traced run's (the harness's `--stack none`).

Run it with the peers' venv (scripts/peers.sh install), which has the SDK and exporter.
"""
import argparse
import json
import os
import resource
import time

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--spans", type=int, default=200_000)
    p.add_argument("--rate", type=float, default=0.0, help="spans per second (0: flat out)")
    p.add_argument("--pace", choices=["burst", "per-span"], default="burst")
    p.add_argument("--sdk", choices=["otel", "none"], default="otel")
    p.add_argument("--endpoint", default=os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4399"))
    a = p.parse_args()

    if a.sdk == "none":
        provider = trace.NoOpTracerProvider()
    else:
        provider = TracerProvider(resource=Resource.create({"service.name": "python-sdk-baseline"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=a.endpoint, insecure=True)))
    tracer = provider.get_tracer("baseline")
    users = [f"u-{i}" for i in range(1, 9)]

    cpu0, t0 = cpu_seconds(), time.perf_counter()
    for n in range(a.spans):
        if a.rate > 0 and a.pace == "burst":
            ahead = n / a.rate - (time.perf_counter() - t0)
            if ahead > 0.001:
                time.sleep(ahead)
        elif a.rate > 0:
            while n >= (time.perf_counter() - t0) * a.rate:
                time.sleep(0.0002)
        span = tracer.start_span(
            "chat gpt-4o-mini",
            kind=trace.SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "user.id": users[n % len(users)],
                "llmtel.feature": "load",
            },
        )
        span.set_attribute("gen_ai.usage.input_tokens", 1200)
        span.set_attribute("gen_ai.usage.output_tokens", 300)
        span.set_attribute("gen_ai.usage.cache_read.input_tokens", 400)
        span.end()
    emitting = time.perf_counter() - t0
    cpu_emitting = cpu_seconds() - cpu0
    if a.sdk != "none":
        provider.shutdown()
    cpu_total = cpu_seconds() - cpu0
    print(json.dumps({
        "spans": a.spans,
        "achieved_rate": a.spans / emitting,
        "cpu_us_per_span": {
            "while_emitting": cpu_emitting * 1e6 / a.spans,
            "including_flush": cpu_total * 1e6 / a.spans,
        },
    }))


if __name__ == "__main__":
    main()
