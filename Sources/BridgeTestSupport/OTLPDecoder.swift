import BridgeCore
import Foundation

/// Decodes the OTLP/HTTP requests a test server received with the official definitions (PyPI
/// `opentelemetry-proto`, in the virtualenv of `scripts/otel-venv.sh`; `BRIDGE_OTEL_PYTHON`):
/// protobuf or JSON, gzip or not, each into its OTLP JSON form (hex ids, enums as numbers,
/// 64-bit integers as strings), so tests assert on one shape whatever the encoding. A body the
/// official parser rejects (bad field, bad UTF-8) throws.
public enum OTLPDecoder {
    /// The Python with `opentelemetry-proto`, from scripts/test.sh.
    public static var python: String? { ProcessInfo.processInfo.environment["BRIDGE_OTEL_PYTHON"] }

    /// True when the decoder can run; with `BRIDGE_REQUIRE_OTEL=1` (scripts/test.sh) a missing
    /// virtualenv is a failure, not a skip.
    public static var isAvailable: Bool {
        if python != nil { return true }
        if ProcessInfo.processInfo.environment["BRIDGE_REQUIRE_OTEL"] == "1" {
            fatalError("BRIDGE_REQUIRE_OTEL=1 but BRIDGE_OTEL_PYTHON is not set; run scripts/test.sh")
        }
        return false
    }

    public struct DecodeError: Error, CustomStringConvertible {
        public var description: String
    }

    /// `signal`: `traces` or `metrics`.
    public static func decode(_ requests: [TestHTTPRequest], signal: String) async throws -> [JSONValue] {
        guard let python else {
            throw DecodeError(description: "BRIDGE_OTEL_PYTHON is not set (scripts/test.sh sets it)")
        }
        let input = JSONValue.array(
            requests.map { r in
                [
                    "signal": .string(signal), "content_type": .string(r.header("Content-Type") ?? ""),
                    "content_encoding": .string(r.header("Content-Encoding") ?? ""),
                    "body": .string(Data(r.body).base64EncodedString()),
                ]
            })
        let script = TestDatabase.projectRoot.appendingPathComponent("Tests/Fixtures/otlp/otlp_decode.py").path
        let r = try await TestProcess.run(python, [script], stdin: input.compact)
        guard r.status == 0 else { throw DecodeError(description: "opentelemetry-proto refused a body: \(r.stderr)") }
        return try JSONValue.parse(r.stdout).arrayValue ?? []
    }

    /// Every span of decoded trace requests.
    public static func spans(_ decoded: [JSONValue]) -> [JSONValue] {
        decoded.flatMap { r in
            (r["resourceSpans"]?.arrayValue ?? []).flatMap {
                ($0["scopeSpans"]?.arrayValue ?? []).flatMap { $0["spans"]?.arrayValue ?? [] }
            }
        }
    }

    /// A span's attributes by key (each value as OTLP JSON: `{"stringValue": …}`, …).
    public static func attributes(_ span: JSONValue) -> [String: JSONValue] {
        Dictionary(
            (span["attributes"]?.arrayValue ?? []).map { ($0["key"]?.stringValue ?? "", $0["value"] ?? .null) },
            uniquingKeysWith: { a, _ in a })
    }
}
