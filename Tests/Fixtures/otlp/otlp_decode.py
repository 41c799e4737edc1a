"""Decodes OTLP/HTTP request bodies with the official definitions (PyPI opentelemetry-proto).

stdin: a JSON list of {"signal": "traces"|"metrics", "content_type": ..., "content_encoding": ...,
"body": base64}. stdout: a JSON list of the requests as OTLP JSON (camelCase, ids as hex, enums
as numbers, 64-bit integers as strings). A body that is not a valid message (bad field, bad
UTF-8, bad gzip) exits 1 naming the request. The tests' oracle: it does not share code with
bridge's encoder.
"""
import base64
import gzip
import json
import sys

from google.protobuf.json_format import MessageToDict, ParseDict
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

HEX_FIELDS = {"traceId", "spanId", "parentSpanId"}


def hexify(node):
    if isinstance(node, dict):
        return {k: (base64.b64decode(v).hex() if k in HEX_FIELDS and isinstance(v, str) else hexify(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [hexify(v) for v in node]
    return node


def main():
    out = []
    for n, req in enumerate(json.load(sys.stdin)):
        body = base64.b64decode(req["body"])
        try:
            if req.get("content_encoding") == "gzip":
                body = gzip.decompress(body)
            if "json" in req.get("content_type", ""):
                out.append(json.loads(body))
                continue
            message = ExportTraceServiceRequest() if req["signal"] == "traces" else ExportMetricsServiceRequest()
            message.ParseFromString(body)
            # Through JSON and back must give the same bytes: no field was unknown (dropped on
            # the way) and bridge writes fields in number order, as the reference encoder does.
            again = type(message)()
            ParseDict(MessageToDict(message), again)
            if again.SerializeToString() != body:
                raise ValueError("body is not the canonical encoding of what it decodes to (unknown or misnumbered fields?)")
        except Exception as e:  # noqa: BLE001 - any failure is the test's finding
            print(f"request {n} ({req.get('content_type')}, {req.get('content_encoding')}): {type(e).__name__}: {e}",
                  file=sys.stderr)
            sys.exit(1)
        out.append(hexify(MessageToDict(message, use_integers_for_enums=True)))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
