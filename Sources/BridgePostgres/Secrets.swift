import BridgeCore
import CBridgeLibPQ
import FoundationEssentials

/// The one place that finds the secrets bridge must never store or print: the API keys in the
/// environment, OTLP header values, and the database password wherever libpq would take it
/// from (a `postgres://user:password@…` URL or `password=` in a key/value string, parsed by
/// libpq itself; `PGPASSWORD`; the password file `PGPASSFILE` or `~/.pgpass`).
public enum Secrets {
    /// Environment variables whose whole value is a secret.
    public static let environmentKeys = ["OPENAI_API_KEY", "OPENAI_TRACING_API_KEY", "PGPASSWORD"]
    /// Environment variables holding `key=value,…` headers whose values are secrets.
    public static let headerEnvironmentKeys = ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"]

    /// Every secret for a process that connects with `connection` in `environment`, plus
    /// `extra` (e.g. exporter keys); values shorter than 3 characters are left out (they would
    /// redact ordinary text).
    public static func collect(connection: ConnectionConfig, environment: Environment, extra: [String] = []) -> [String]
    {
        var out = environmentKeys.compactMap { environment[$0] }
        for key in headerEnvironmentKeys {
            // Empty default: an unset variable holds no header secrets.
            for pair in (environment[key] ?? "").split(separator: ",") {
                if let eq = pair.firstIndex(of: "=") {
                    let v = pair[pair.index(after: eq)...].trimmingCharacters(in: .whitespaces)
                    out.append(v.removingPercentEncoding ?? v)
                }
            }
        }
        if let p = (try? connection.parsedOptions())?["password"] { out.append(p) }
        out += passwordFile(environment: environment)
        out += extra
        var seen = Set<String>()
        return out.filter { $0.count >= 3 && seen.insert($0).inserted }
    }

    /// The passwords of the libpq password file (`PGPASSFILE`, else `~/.pgpass`): the fifth
    /// field of each `host:port:db:user:password` line, with `\:` and `\\` undone.
    static func passwordFile(environment: Environment) -> [String] {
        let path = environment["PGPASSFILE"] ?? environment["HOME"].map { $0 + "/.pgpass" }
        guard let path, let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        var out: [String] = []
        for line in text.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
            var fields: [String] = [""]
            var escaped = false
            for ch in line {
                if escaped {
                    fields[fields.count - 1].append(ch)
                    escaped = false
                } else if ch == "\\" {
                    escaped = true
                } else if ch == ":" && fields.count < 5 {
                    fields.append("")
                } else {
                    fields[fields.count - 1].append(ch)
                }
            }
            if fields.count == 5, !fields[4].isEmpty { out.append(fields[4]) }
        }
        return out
    }
}

extension ConnectionConfig {
    /// The options of `conninfo` as libpq parses them (URL or key/value form); empty for an
    /// empty string. A string libpq cannot parse throws a `.connection` error whose message
    /// never repeats the input (libpq's own messages quote it, password included).
    public func parsedOptions() throws(PostgresError) -> [String: String] {
        guard !conninfo.isEmpty else { return [:] }
        var err: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(conninfo, &err) else {
            let raw = err.map { String(cString: $0) } ?? "out of memory"
            if let err { PQfreemem(err) }
            throw PostgresError(
                kind: .connection,
                message:
                    "the connection string cannot be parsed: \(Self.withoutQuotedInput(raw)); expected postgres://user:password@host:port/dbname or key=value pairs"
            )
        }
        defer { PQconninfoFree(options) }
        var out: [String: String] = [:]
        var p = options
        while let keyword = p.pointee.keyword {
            if let v = p.pointee.val { out[String(cString: keyword)] = String(cString: v) }
            p += 1
        }
        return out
    }

    /// libpq's parse message with every quoted part (which repeats the input) replaced by `…`.
    static func withoutQuotedInput(_ message: String) -> String {
        var out = ""
        var inQuote = false
        for ch in message.trimmingCharacters(in: .whitespacesAndNewlines) {
            if ch == "\"" {
                if !inQuote { out += "\"…\"" }
                inQuote.toggle()
            } else if !inQuote {
                out.append(ch)
            }
        }
        return out
    }
}
