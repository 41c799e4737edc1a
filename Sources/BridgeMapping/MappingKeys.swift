import BridgeCore

/// The vocabulary of the mapping files: every key of every section, declared once.
///
/// Each section is an enum whose cases are its keys. The raw value is the YAML spelling, the case
/// name in snake case: `@SnakeCaseRawValues` spells it in the sets that have a key of several
/// words, and `StoredFormatTests` pins every set's keys. The case order is the order "expected
/// one of" lists them. A key's `declaration` says what it holds, whether it must be given, its
/// default and what it means. The loader reads a section through `MapReader<Section>`, so the
/// unknown-key check and every lookup use these cases, and `MappingKeyTable` renders the same
/// declarations as the key table of docs/mappings.md.
protocol MappingKeySet: CaseIterable, Hashable, RawRepresentable where RawValue == String, AllCases == [Self] {
    var declaration: MappingKey { get }
}

extension MappingKeySet {
    /// The YAML spellings, in declaration order.
    static var names: [String] { allCases.map(\.rawValue) }

    /// The value a key that has a default takes when it is left out (what the docs show).
    var declaredDefault: String {
        let d = declaration
        guard let value = d.defaultValue, !d.defaultIsProse else { preconditionFailure("'\(rawValue)' has no default") }
        return value
    }
}

/// A section whose keys are stored in fields of `Model` (a column, a status value, a limit):
/// each such key is bound to its field once, which gives both its declaration (the default is
/// the field's value in `defaults`) and its reading (`MapReader.read(into:)`). Its other keys
/// are declared as usual and read by hand.
protocol ModelKeySet: MappingKeySet {
    associatedtype Model
    /// The model as it is when the section is left out.
    static var defaults: Model { get }
    var field: KeyField<Model> { get }
}

extension ModelKeySet {
    var declaration: MappingKey {
        switch field {
        case .key(let key): return key
        case .bound(let f): return MappingKey(f.kind, f.requirement, default: f.text(in: Self.defaults), f.summary)
        }
    }
}

/// A key of a `ModelKeySet`: a name, integer or boolean bound to a field of the model, or any
/// other key.
enum KeyField<Model> {
    case bound(BoundField<Model>)
    case key(MappingKey)

    /// A name with a default (the field's): left out, the key takes it.
    static func name(
        _ path: WritableKeyPath<Model, String>, _ requirement: MappingKeyRequirement, _ summary: String
    ) -> Self {
        .bound(BoundField(path: .name(path), requirement: requirement, summary: summary))
    }

    /// A name that may be absent: left out, the field is nil (its value in the defaults is
    /// what the docs show).
    static func name(
        _ path: WritableKeyPath<Model, String?>, _ requirement: MappingKeyRequirement, _ summary: String
    ) -> Self {
        .bound(BoundField(path: .optionalName(path), requirement: requirement, summary: summary))
    }

    /// An optional name with a default.
    static func name(_ path: WritableKeyPath<Model, String>, _ summary: String) -> Self {
        name(path, .optional, summary)
    }

    /// An optional name that may be absent.
    static func name(_ path: WritableKeyPath<Model, String?>, _ summary: String) -> Self {
        name(path, .optional, summary)
    }

    /// An optional integer within `min...max`, with the field's default.
    static func int(_ path: WritableKeyPath<Model, Int>, min: Int? = nil, max: Int? = nil, _ summary: String) -> Self {
        .bound(BoundField(path: .int(path, min: min, max: max), requirement: .optional, summary: summary))
    }

    /// An optional boolean with the field's default.
    static func bool(_ path: WritableKeyPath<Model, Bool>, _ summary: String) -> Self {
        .bound(BoundField(path: .bool(path), requirement: .optional, summary: summary))
    }

    /// An optional duration, held in seconds, with the field's default.
    static func duration(_ path: WritableKeyPath<Model, Double>, _ summary: String) -> Self {
        .bound(BoundField(path: .duration(path), requirement: .optional, summary: summary))
    }
}

/// A bound key's field, requirement and description.
struct BoundField<Model> {
    enum Path {
        case name(WritableKeyPath<Model, String>)
        case optionalName(WritableKeyPath<Model, String?>)
        case int(WritableKeyPath<Model, Int>, min: Int?, max: Int?)
        case bool(WritableKeyPath<Model, Bool>)
        /// Seconds.
        case duration(WritableKeyPath<Model, Double>)
    }
    var path: Path
    var requirement: MappingKeyRequirement
    var summary: String

    var kind: MappingKeyKind {
        switch path {
        case .name, .optionalName: .name
        case .int(_, let min, let max): .int(min: min, max: max)
        case .bool: .bool
        case .duration: .duration
        }
    }

    /// The field's value in `model` as the docs show it (nil: absent).
    func text(in model: Model) -> String? {
        switch path {
        case .name(let p): model[keyPath: p]
        case .optionalName(let p): model[keyPath: p]
        case .int(let p, _, _): "\(model[keyPath: p])"
        case .bool(let p): "\(model[keyPath: p])"
        case .duration(let p): MappingDuration.text(model[keyPath: p])
        }
    }
}

/// One key: what it holds, whether it must be given, its default, and a one-line description.
struct MappingKey {
    var kind: MappingKeyKind
    var requirement: MappingKeyRequirement
    /// The value when the key is left out, as the docs show it; nil when there is none.
    var defaultValue: String?
    /// Whether `defaultValue` is prose ("the agent's name") rather than the value itself.
    var defaultIsProse = false
    var summary: String

    init(
        _ kind: MappingKeyKind, _ requirement: MappingKeyRequirement, default defaultValue: String? = nil,
        _ summary: String
    ) {
        self.kind = kind
        self.requirement = requirement
        self.defaultValue = defaultValue
        self.summary = summary
    }

    /// An optional key.
    init(_ kind: MappingKeyKind, default defaultValue: String? = nil, _ summary: String) {
        self.init(kind, .optional, default: defaultValue, summary)
    }

    /// An optional key whose default is described rather than given.
    init(_ kind: MappingKeyKind, defaultProse: String, _ summary: String) {
        self.init(kind, .optional, default: defaultProse, summary)
        defaultIsProse = true
    }

    /// Whether a lookup reports the key as missing when it is left out.
    var isRequired: Bool { requirement == .required }
}

enum MappingKeyRequirement: Equatable {
    case required
    case optional
    /// Required in some cases only (the loader checks them); the text says when.
    case when(String)
}

/// What a key's value is.
indirect enum MappingKeyKind {
    /// A non-empty string: a table, column, agent or tool name.
    case name
    case string
    /// Text with `{{task.column}}` / `{{agent.column}}` references.
    case template
    /// SQL text (one statement).
    case sql
    case bool
    case int(min: Int? = nil, max: Int? = nil)
    case number(positive: Bool)
    /// `90s`, `30m`, `24h`, `7d` or plain seconds (see `MappingDuration`).
    case duration
    case choice([String])
    /// A list of non-empty strings.
    case names
    /// Any YAML value, taken as JSON.
    case json
    /// A mapping of free keys to strings.
    case stringMap
    /// A mapping with the keys of `Section`.
    case section(any MappingKeySet.Type)
    /// A list of mappings with the keys of `Section`.
    case entries(any MappingKeySet.Type)
    /// A mapping of free names (`placeholder`, e.g. `<model>`) to mappings with the keys of `Section`.
    case named(String, any MappingKeySet.Type)
    case either(MappingKeyKind, MappingKeyKind)
}

/// The text of a `.duration` key: a number of seconds, minutes, hours or days (`90s`, `30m`,
/// `24h`, `7d`), or plain seconds. Bounded like `Duration(parsing:)`, whose units differ (a
/// mapping's waits are counted in days, a command's timeouts in milliseconds).
enum MappingDuration {
    /// The units (largest first), a bare number of seconds, never zero, at most
    /// `Duration.maximumSeconds` (`inf` or `1e300d` would load, and fail only at the first use,
    /// after a model call was paid).
    static let syntax = DurationSyntax(
        units: [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)], bareSeconds: true, allowsZero: false,
        maximumSeconds: Duration.maximumSeconds)

    /// The seconds `text` (spaces and tabs around it dropped) stands for; nil unless `syntax`
    /// accepts it.
    static func seconds(_ text: String) -> Double? { syntax.seconds(text.trimmingSpaces) }

    /// `seconds` in the largest unit that holds it whole (86400: `1d`), else as plain seconds.
    static func text(_ seconds: Double) -> String {
        for unit in syntax.units
        where seconds >= unit.seconds && seconds.truncatingRemainder(dividingBy: unit.seconds) == 0 {
            // A count too large for an Int (never a loaded value) is written as plain seconds.
            if let count = Int(exactly: seconds / unit.seconds) { return "\(count)\(unit.suffix)" }
        }
        return "\(seconds)"
    }
}

/// The table of every mapping key, rendered from the declarations (docs/mappings.md holds it
/// between `beginMarker` and `endMarker`; `bridge mappings keys --markdown` prints it).
public enum MappingKeyTable {
    public static let beginMarker = "<!-- mapping-keys:begin (generated by scripts/gen-mapping-keys.sh) -->"
    public static let endMarker = "<!-- mapping-keys:end -->"

    /// One row per key, depth first from the top of a file.
    public struct Row: Sendable, Equatable {
        public var path: String
        public var kind: String
        public var required: String
        public var defaultValue: String
        public var summary: String
    }

    public static var rows: [Row] { rows(Keys.Top.self, prefix: "") }

    /// The Markdown table (without the markers).
    public static func markdown() -> String {
        var out = "| key | type | required | default | what it is |\n|---|---|---|---|---|\n"
        for r in rows {
            let cells = ["`\(r.path)`", r.kind, r.required, r.defaultValue, r.summary]
            out += "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |\n"
        }
        return out
    }

    static func rows<S: MappingKeySet>(_ section: S.Type, prefix: String) -> [Row] {
        var out: [Row] = []
        for key in S.allCases {
            let d = key.declaration
            let path = prefix.isEmpty ? key.rawValue : prefix + "." + key.rawValue
            let required: String
            switch d.requirement {
            case .required: required = "yes"
            case .optional: required = "no"
            case .when(let text): required = text
            }
            out.append(
                Row(
                    path: path, kind: describe(d.kind), required: required,
                    // Empty default: a key without a default has an empty cell in the table.
                    defaultValue: d.defaultValue.map { d.defaultIsProse ? $0 : "`\($0)`" } ?? "", summary: d.summary))
            out += children(d.kind, path: path)
        }
        return out
    }

    static func children(_ kind: MappingKeyKind, path: String) -> [Row] {
        switch kind {
        case .section(let s): return rows(s, prefix: path)
        case .entries(let s): return rows(s, prefix: path + "[]")
        case .named(let placeholder, let s): return rows(s, prefix: path + "." + placeholder)
        case .either(let a, let b): return children(a, path: path) + children(b, path: path)
        default: return []
        }
    }

    static func describe(_ kind: MappingKeyKind) -> String {
        switch kind {
        case .name: return "name"
        case .string: return "string"
        case .template: return "template"
        case .sql: return "SQL"
        case .bool: return "boolean"
        case .int(let min, let max):
            switch (min, max) {
            case (let lo?, let hi?): return "integer \(lo)–\(hi)"
            case (let lo?, nil): return "integer ≥ \(lo)"
            case (nil, let hi?): return "integer ≤ \(hi)"
            case (nil, nil): return "integer"
            }
        case .number(let positive): return positive ? "number > 0" : "number ≥ 0"
        case .duration: return "duration"
        case .choice(let values): return values.map { "`\($0)`" }.joined(separator: " or ")
        case .names: return "list of names"
        case .json: return "any (JSON)"
        case .stringMap: return "mapping of strings"
        case .section: return "mapping"
        case .entries: return "list of mappings"
        case .named(let placeholder, _): return "mapping of \(placeholder) to mappings"
        case .either(let a, let b): return describe(a) + ", or " + describe(b)
        }
    }
}
