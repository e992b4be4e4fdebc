#!/usr/bin/env bash
# The standard OTEL_* variables, end to end on the quickstart binary: llmtel::init() honours
# them, settings made in code win, OTEL_SDK_DISABLED turns export off, the sampler variable
# is applied. Needs the peers (scripts/peers.sh start; source .peers/env): rotel's log shows
# the resource attributes and wire types that Phoenix does not keep.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${LLMTEL_ROTEL_OTLP_GRPC:?source .peers/env first (scripts/peers.sh start)}"
: "${LLMTEL_ROTEL_LOG:?source .peers/env first}"
qs="${CARGO_TARGET_DIR:-target}/debug/examples/quickstart"
cargo build -q -j2 --example quickstart
fail() { echo "check-env: FAIL: $*" >&2; exit 1; }

# 1. gRPC to rotel from the variables alone; code's service name wins over OTEL_SERVICE_NAME;
#    OTEL_RESOURCE_ATTRIBUTES is merged, its values percent-decoded; an empty
#    OTEL_EXPORTER_OTLP_TIMEOUT is as unset (the specification), not a start-up error.
tag="env-$$-$RANDOM"
env -u OTEL_EXPORTER_OTLP_TRACES_ENDPOINT \
  OTEL_EXPORTER_OTLP_ENDPOINT="$LLMTEL_ROTEL_OTLP_GRPC" OTEL_EXPORTER_OTLP_PROTOCOL=grpc \
  OTEL_EXPORTER_OTLP_TIMEOUT= \
  OTEL_SERVICE_NAME=name-from-env \
  OTEL_RESOURCE_ATTRIBUTES="deployment.environment.name=$tag,service.namespace=support%20team%2Ceu" \
  "$qs" >/dev/null 2>&1 || fail "quickstart exporting over gRPC exited non-zero"
for _ in $(seq 1 40); do grep -q "Str($tag)" "$LLMTEL_ROTEL_LOG" && break; sleep 0.25; done
grep -q "Str($tag)" "$LLMTEL_ROTEL_LOG" || fail "OTEL_RESOURCE_ATTRIBUTES did not reach rotel"
# The resource block (between "Resource attributes:" and the scope) that carries the tag.
block=$(awk -v tag="Str($tag)" '
  /^Resource attributes:/ { inres = 1; buf = ""; next }
  inres && /^ *-> / { buf = buf $0 "\n"; next }
  inres { inres = 0; if (index(buf, tag)) { printf "%s", buf; exit } }
' "$LLMTEL_ROTEL_LOG")
[ -n "$block" ] || fail "no resource block with $tag in rotel's log"
grep -q "service.name: Str(support-bot-quickstart)" <<<"$block" \
  || fail "the service name set in code must win over OTEL_SERVICE_NAME: $block"
grep -q "service.namespace: Str(support team,eu)" <<<"$block" \
  || fail "OTEL_RESOURCE_ATTRIBUTES values must be percent-decoded: $block"
echo "check-env: OTLP/gRPC from OTEL_* variables, resource attributes merged and decoded, empty timeout as unset, code wins: ok"

# 2. OTEL_SDK_DISABLED=true: no export, even with an endpoint.
out=$(OTEL_SDK_DISABLED=true OTEL_EXPORTER_OTLP_ENDPOINT="$LLMTEL_ROTEL_OTLP_GRPC" "$qs" 2>/dev/null)
grep -q "Set OTEL_EXPORTER_OTLP_ENDPOINT" <<<"$out" || fail "OTEL_SDK_DISABLED=true still exported"
echo "check-env: OTEL_SDK_DISABLED: ok"

# 3. OTEL_TRACES_SAMPLER=always_off: nothing reaches the collector.
tag="sampled-off-$$-$RANDOM"
OTEL_EXPORTER_OTLP_ENDPOINT="$LLMTEL_ROTEL_OTLP_GRPC" OTEL_EXPORTER_OTLP_PROTOCOL=grpc \
  OTEL_TRACES_SAMPLER=always_off OTEL_RESOURCE_ATTRIBUTES="deployment.environment.name=$tag" \
  "$qs" >/dev/null 2>&1 || fail "quickstart with always_off exited non-zero"
sleep 2
if grep -q "Str($tag)" "$LLMTEL_ROTEL_LOG"; then fail "OTEL_TRACES_SAMPLER=always_off exported spans"; fi
echo "check-env: OTEL_TRACES_SAMPLER: ok"

# 4. An unsupported protocol is warned about, with what to set, and ignored (the
#    specification: invalid values warn and the default is used): the spans still arrive,
#    over the default OTLP/HTTP.
: "${LLMTEL_ROTEL_OTLP_HTTP:?source .peers/env first}"
tag="bad-protocol-$$-$RANDOM"
err=$(env -u OTEL_EXPORTER_OTLP_TRACES_ENDPOINT \
  OTEL_EXPORTER_OTLP_ENDPOINT="$LLMTEL_ROTEL_OTLP_HTTP" OTEL_EXPORTER_OTLP_PROTOCOL=http/json \
  OTEL_RESOURCE_ATTRIBUTES="deployment.environment.name=$tag" "$qs" 2>&1 >/dev/null) \
  || fail "quickstart with OTEL_EXPORTER_OTLP_PROTOCOL=http/json exited non-zero: $err"
grep -q "OTEL_EXPORTER_OTLP_PROTOCOL" <<<"$err" && grep -q "http/protobuf" <<<"$err" \
  || fail "no warning naming the variable and what to set: $err"
for _ in $(seq 1 40); do grep -q "Str($tag)" "$LLMTEL_ROTEL_LOG" && break; sleep 0.25; done
grep -q "Str($tag)" "$LLMTEL_ROTEL_LOG" \
  || fail "with a bad protocol warned about, the spans did not arrive over the default"
echo "check-env: bad OTEL_EXPORTER_OTLP_PROTOCOL warned about with what to do, default used: ok"

# 5. OTEL_EXPORTER_OTLP_HEADERS reach the collector (a loopback listener records the request
#    headers of the first OTLP/HTTP export and answers 200).
hdrs=$(mktemp)
python3 - "$hdrs" <<'PY' &
import http.server, socketserver, sys
out = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        open(out, "w").write(f"{self.path}\n{self.headers}")
        self.send_response(200); self.send_header("content-type", "application/x-protobuf")
        self.end_headers()
    def log_message(self, *a): pass
with socketserver.TCPServer(("127.0.0.1", 0), H) as s:
    open(out + ".port", "w").write(str(s.server_address[1]))
    s.timeout = 20
    s.handle_request()
PY
listener=$!
for _ in $(seq 1 40); do [ -s "$hdrs.port" ] && break; sleep 0.1; done
port=$(cat "$hdrs.port")
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$port" OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf \
  OTEL_EXPORTER_OTLP_HEADERS="x-tenant=acme,x-scope-orgid=team%20a" "$qs" >/dev/null 2>&1 || true
wait "$listener" || true
grep -qi "^x-tenant: acme" "$hdrs" || fail "OTEL_EXPORTER_OTLP_HEADERS not sent: $(cat "$hdrs")"
grep -qi "^x-scope-orgid: team a" "$hdrs" || fail "header values are not URL-decoded: $(cat "$hdrs")"
head -1 "$hdrs" | grep -q "^/v1/traces$" || fail "OTLP/HTTP path is not /v1/traces: $(head -1 "$hdrs")"
rm -f "$hdrs" "$hdrs.port"
echo "check-env: OTEL_EXPORTER_OTLP_HEADERS: ok"
