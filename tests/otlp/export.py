#!/usr/bin/env python3
"""Export spans with known names, kinds, statuses and durations to an OTLP/HTTP
endpoint with the real OpenTelemetry Python SDK (tests/otlp_python.rs checks
the series the agent makes of them).

--mode protobuf   the SDK's OTLPSpanExporter (protobuf), no compression
--mode gzip       the same exporter with Compression.Gzip
--mode json       the same spans as an OTLP/JSON body sent with urllib (the
                  Python HTTP exporter only speaks protobuf); enum values by
                  name, int64 as strings, hex ids

Every service name is prefixed with --prefix so each mode has its own series.
Exits non-zero unless the endpoint accepted every span.
"""
import argparse
import json
import sys
import urllib.request

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

T0 = 1_700_000_000_000_000_000  # ns; any fixed time: the agent stamps receive time

# (service, span name, kind, status, duration in ms)
SPANS = [
    ("checkout", "GET /pay", SpanKind.SERVER, StatusCode.OK, 50),
    ("checkout", "GET /pay", SpanKind.SERVER, StatusCode.OK, 300),
    ("checkout", "GET /pay", SpanKind.SERVER, StatusCode.ERROR, 700),
    ("checkout", "GET /pay", SpanKind.SERVER, StatusCode.UNSET, 2000),
    ("checkout", "db.query", SpanKind.CLIENT, StatusCode.UNSET, 100),
    ("inventory", "reserve", SpanKind.INTERNAL, StatusCode.OK, 20),
    ("inventory", "reserve", SpanKind.INTERNAL, StatusCode.ERROR, 1500),
]


def make_spans(prefix):
    """Finished SDK spans, grouped by service (one TracerProvider per resource)."""
    out = []
    for service in dict.fromkeys(s[0] for s in SPANS):
        mem = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": prefix + service}))
        provider.add_span_processor(SimpleSpanProcessor(mem))
        tracer = provider.get_tracer("homeostat-test")
        for svc, name, kind, status, ms in SPANS:
            if svc != service:
                continue
            span = tracer.start_span(name, kind=kind, start_time=T0)
            if status == StatusCode.ERROR:
                span.set_status(Status(StatusCode.ERROR, "boom"))
            elif status == StatusCode.OK:
                span.set_status(Status(StatusCode.OK))
            span.end(end_time=T0 + ms * 1_000_000)
        provider.shutdown()
        out.extend(mem.get_finished_spans())
    return out


def to_json(spans):
    by_service = {}
    for s in spans:
        by_service.setdefault(s.resource.attributes["service.name"], []).append(s)
    kinds = {
        SpanKind.INTERNAL: "SPAN_KIND_INTERNAL",
        SpanKind.SERVER: "SPAN_KIND_SERVER",
        SpanKind.CLIENT: "SPAN_KIND_CLIENT",
        SpanKind.PRODUCER: "SPAN_KIND_PRODUCER",
        SpanKind.CONSUMER: "SPAN_KIND_CONSUMER",
    }
    codes = {StatusCode.UNSET: "STATUS_CODE_UNSET", StatusCode.OK: "STATUS_CODE_OK",
             StatusCode.ERROR: "STATUS_CODE_ERROR"}
    resource_spans = []
    for service, ss in by_service.items():
        resource_spans.append({
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
            "scopeSpans": [{
                "scope": {"name": "homeostat-test"},
                "spans": [{
                    "traceId": format(s.context.trace_id, "032x"),
                    "spanId": format(s.context.span_id, "016x"),
                    "name": s.name,
                    "kind": kinds[s.kind],
                    "startTimeUnixNano": str(s.start_time),
                    "endTimeUnixNano": str(s.end_time),
                    "status": {"code": codes[s.status.status_code]},
                } for s in ss],
            }],
        })
    return json.dumps({"resourceSpans": resource_spans}).encode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--mode", choices=["protobuf", "gzip", "json"], required=True)
    ap.add_argument("--prefix", default="")
    args = ap.parse_args()
    spans = make_spans(args.prefix)
    if args.mode == "json":
        req = urllib.request.Request(args.endpoint, data=to_json(spans), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = json.loads(resp.read() or b"{}")
            if resp.status != 200 or body.get("partialSuccess"):
                print(f"refused: {resp.status} {body}", file=sys.stderr)
                return 1
    else:
        compression = Compression.Gzip if args.mode == "gzip" else Compression.NoCompression
        exporter = OTLPSpanExporter(endpoint=args.endpoint, compression=compression, timeout=10)
        result = exporter.export(spans)
        exporter.shutdown()
        if result != SpanExportResult.SUCCESS:
            print(f"export failed: {result}", file=sys.stderr)
            return 1
    print(f"exported {len(spans)} spans ({args.mode})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
