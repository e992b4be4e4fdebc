"""A Python app that calls the OpenAI API through the `openai` client, instrumented by one of
other projects' GenAI instrumentations, exporting its spans over OTLP/HTTP.

Usage: python openai_app.py INSTRUMENTATION OTLP_TRACES_URL PROJECT CALLS

INSTRUMENTATION is `openai-v2` (OpenTelemetry's opentelemetry-instrumentation-openai-v2),
`openllmetry` (Traceloop's opentelemetry-instrumentation-openai) or `openlit`. The OpenAI API
is a local stand-in (the only thing stood in for): it answers every chat completion with the
usage below, 1,024 of the 1,200 prompt tokens cached. Prints one JSON line: what was sent.
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

which, url, project, calls = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

RESPONSE = {
    "id": "chatcmpl-standin",
    "object": "chat.completion",
    "created": 1764700000,
    "model": "gpt-4o-2024-08-06",
    "service_tier": "default",
    "system_fingerprint": "fp_standin",
    "choices": [{
        "index": 0,
        "message": {"role": "assistant", "content": "Refunds are accepted within 30 days."},
        "finish_reason": "stop",
    }],
    "usage": {
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    },
}


class StandIn(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps(RESPONSE).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), StandIn)
threading.Thread(target=server.serve_forever, daemon=True).start()
base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"

from opentelemetry import trace  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402

provider = TracerProvider(resource=Resource.create({
    "service.name": f"python-{which}",
    "openinference.project.name": project,
}))
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=url)))
trace.set_tracer_provider(provider)

if which == "openai-v2":
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    OpenAIInstrumentor().instrument()
elif which == "openllmetry":
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    OpenAIInstrumentor().instrument()
elif which == "openlit":
    import openlit
    # OpenLIT reuses the app's tracer provider (resource, exporter) when one is set; no
    # metrics, no content, and not its HTTP-client instrumentations.
    openlit.init(disable_metrics=True, disable_events=True, capture_message_content=False,
                 disabled_instrumentors=[
                     "requests", "httpx", "urllib", "urllib3", "aiohttp-client",
                 ])
else:
    sys.exit(f"unknown instrumentation {which!r}")

import openai  # noqa: E402

client = openai.OpenAI(base_url=base_url, api_key="sk-test-NOT-A-REAL-KEY-0123456789")
for i in range(calls):
    client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": f"What is the refund window? ({i})"}],
        user="alice",
    )
provider.force_flush()
provider.shutdown()
print(json.dumps({"instrumentation": which, "calls": calls, "usage": RESPONSE["usage"]}))
