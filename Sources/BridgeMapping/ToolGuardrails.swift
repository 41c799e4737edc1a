import BridgeCore
import FoundationEssentials
import Yams

/// One tool guardrail (the SDK's `tool_input_guardrails` / `tool_output_guardrails`): a check
/// like an agent-level guardrail (a read-only SQL query or an agent whose structured output has
/// a boolean `tripwire_triggered`), and what a tripwire does to the call.
///
/// ```yaml
/// tools:
///   - name: lookup_order
///     ...
///     input_guardrails:
///       - name: own_orders_only
///         sql: {query: "SELECT NOT EXISTS (...) AS tripwire_triggered"}
///         on_trip: reject_content          # the model is told `message` instead of the output
///         message: "That order belongs to another workspace."
///     output_guardrails:
///       - name: no_card_numbers
///         agent: PIIChecker
///         on_trip: raise_exception         # the run fails: ToolOutputGuardrailTripwireTriggered
/// ```
@MemberwiseInit
@SnakeCaseCodingKeys
public struct ToolGuardrailSpec: Codable, Sendable, Equatable {
    /// The check, with the guardrail's name (its span's `name`).
    public var check: GuardrailSpec
    public var onTrip: ToolGuardrailBehavior

    public var name: String { check.name }
}

/// What a tripped tool guardrail does (the SDK's `ToolGuardrailFunctionOutput.behavior`; a
/// guardrail that does not trip is `allow`).
public enum ToolGuardrailBehavior: Codable, Sendable, Equatable {
    /// The call goes on, but the model receives `message` (a template over the task row,
    /// `{{task.column}}`) instead of running the tool (input) or instead of its output (output).
    /// A guardrail's own `message` (a SQL column or a field of the agent's answer) wins.
    case rejectContent(message: String)
    /// The run fails with `ToolInputGuardrailTripwireTriggered` / `ToolOutputGuardrailTripwireTriggered`.
    case raiseException

    /// The YAML names.
    public static let names = ["reject_content", "raise_exception"]

    enum CodingKeys: String, CodingKey { case type, message }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch try c.decode(String.self, forKey: .type) {
        case "reject_content": self = .rejectContent(message: try c.decode(String.self, forKey: .message))
        case "raise_exception": self = .raiseException
        case let other:
            throw DecodingError.dataCorruptedError(
                forKey: .type, in: c, debugDescription: "unknown tool guardrail behavior \(other)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .rejectContent(let message):
            try c.encode("reject_content", forKey: .type)
            try c.encode(message, forKey: .message)
        case .raiseException:
            try c.encode("raise_exception", forKey: .type)
        }
    }
}

extension ToolSpec {
    /// Every tool guardrail with its place in the YAML (`input_guardrails[0]`, …).
    public var guardrailEntries: [(key: String, guardrail: ToolGuardrailSpec)] {
        let inputs = (inputGuardrails ?? []).enumerated().map { ("input_guardrails[\($0)]", $1) }
        let outputs = (outputGuardrails ?? []).enumerated().map { ("output_guardrails[\($0)]", $1) }
        return inputs + outputs
    }

    /// Every tool guardrail, inputs first.
    public var allGuardrails: [ToolGuardrailSpec] { (inputGuardrails ?? []) + (outputGuardrails ?? []) }
}

extension ToolGuardrailSpec {
    /// The SQL parameters a tool guardrail's query may use besides `:task.column`.
    public static func parameters(output: Bool) -> [String] {
        output ? ["tool_name", "arguments", "output", "input"] : ["tool_name", "arguments", "input"]
    }

    /// The model's text when a guardrail rejects without a message of its own.
    public static func defaultMessage(_ guardrail: String, output: Bool) -> String {
        output
            ? "The tool's output was withheld by guardrail \(guardrail)."
            : "The tool call was rejected by guardrail \(guardrail); the tool did not run."
    }
}

// Reading `input_guardrails` / `output_guardrails` of a tool.
extension LoadState {
    /// The list under `key` (`input_guardrails` or `output_guardrails`) of tool reader `m`.
    static func parseToolGuardrails(_ r: YAMLReader, _ m: MapReader<Keys.Tool>, _ key: Keys.Tool)
        -> [ToolGuardrailSpec]?
    {
        guard let node = m.node(key) else { return nil }
        guard let list = r.list(node, m.path(key)) else { return nil }
        let output = key == .outputGuardrails
        var out: [ToolGuardrailSpec] = []
        for (i, item) in list.enumerated() {
            let path = "\(m.path(key))[\(i)]"
            guard let g = r.map(item, path, Keys.ToolGuardrail.self) else { continue }
            let name = g.name(.name)
            if let name, out.contains(where: { $0.name == name }) {
                r.issue(g.node(.name), g.path(.name), "duplicate guardrail name '\(name)' in \(key.rawValue)")
            }
            let implementation = parseGuardrailCheck(
                r, g, item, path, parameters: ToolGuardrailSpec.parameters(output: output))
            var behavior = ToolGuardrailBehavior.raiseException
            let onTrip = g.nameOrDefault(.onTrip)
            switch onTrip {
            case "raise_exception":
                if g.has(.message) {
                    r.issue(g.keyNode(.message), g.path(.message), "message goes with on_trip: reject_content")
                }
            case "reject_content":
                let message =
                    g.template(.message)?.source
                    // Empty default: a guardrail without a name gets the message without one.
                    ?? ToolGuardrailSpec.defaultMessage(name ?? "", output: output)
                if let t = try? Template(parsing: message), !t.columns(root: "agent").isEmpty {
                    r.issue(
                        g.node(.message), g.path(.message),
                        "a tool guardrail's message may use {{task.column}} only (no agent row at call time)")
                }
                behavior = .rejectContent(message: message)
            default:
                var msg =
                    "unknown on_trip '\(onTrip)' (expected \(ToolGuardrailBehavior.names.joined(separator: " or ")))"
                if let near = nearest(onTrip, in: ToolGuardrailBehavior.names) { msg += " (did you mean '\(near)'?)" }
                r.issue(g.node(.onTrip), g.path(.onTrip), msg)
            }
            guard let name, let implementation else { continue }
            out.append(
                ToolGuardrailSpec(check: GuardrailSpec(name: name, implementation: implementation), onTrip: behavior))
        }
        return out
    }
}
