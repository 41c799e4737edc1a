import BridgeCore
import Foundation
import SwiftSyntaxMacroExpansion
import SwiftSyntaxMacrosGenericTestSupport
import Testing

@testable import BridgeMacros

@Suite struct BridgeMacrosTests {
    let macros: [String: MacroSpec] = [
        "MemberwiseInit": MacroSpec(type: MemberwiseInitMacro.self),
        "SnakeCaseCodingKeys": MacroSpec(type: SnakeCaseCodingKeysMacro.self),
        "SnakeCaseRawValues": MacroSpec(type: SnakeCaseRawValuesMacro.self, conformances: ["RawRepresentable"]),
    ]

    /// Expands `@attribute` on `type` and expects `type` with `added` as its last members, after a
    /// blank line (nothing added: the type stays as it is).
    func expand(_ attribute: String, _ type: String, adds added: String = "", diagnostics: [DiagnosticSpec] = []) {
        var expanded = type
        if !added.isEmpty {
            let members = added.split(separator: "\n", omittingEmptySubsequences: false).map {
                $0.isEmpty ? "" : "    " + $0
            }
            expanded = String(type.dropLast()) + "\n" + members.joined(separator: "\n") + "\n}"
        }
        assertMacroExpansion(
            "@\(attribute)\n" + type, expandedSource: expanded, diagnostics: diagnostics, macroSpecs: macros,
            failureHandler: { Issue.record(Comment(rawValue: $0.message)) })
    }

    /// A default only where the declaration writes one; closures escape unless optional; what
    /// only the type sets is no parameter.
    @Test func everyStoredPropertyInOrderWithItsDefault() {
        expand(
            "MemberwiseInit",
            """
            public struct Limits {
                public var name: String
                public var count: Int = 3
                public var note: String?
                public var tag: String? = nil
                public private(set) var hits: Int = 0
                public let kind: String = "fixed"
                public let id: Int
                public let parent: Int?
                public var total: Int { count * 2 }
                static var shared = 0
                public var seen: Bool = false {
                    didSet { print(seen) }
                }
                var a, b: Int
                var run: @Sendable (Int) -> Void
                var done: (() -> Void)?
            }
            """,
            adds: """
                public init(
                    name: String,
                    count: Int = 3,
                    note: String?,
                    tag: String? = nil,
                    id: Int,
                    parent: Int?,
                    seen: Bool = false,
                    a: Int,
                    b: Int,
                    run: @escaping @Sendable (Int) -> Void,
                    done: (() -> Void)?
                ) {
                    self.name = name
                    self.count = count
                    self.note = note
                    self.tag = tag
                    self.id = id
                    self.parent = parent
                    self.seen = seen
                    self.a = a
                    self.b = b
                    self.run = run
                    self.done = done
                }
                """)
    }

    @Test(arguments: [
        ("    var traces = 0", "@MemberwiseInit needs the type of 'traces' written out"),
        (
            "    private(set) var traces: Int",
            "@MemberwiseInit would let callers set 'traces', which only its type sets: give it an initial value"
        ),
        (
            "    @Clamped var traces: Int",
            "@MemberwiseInit does not read 'traces''s attributes (a property wrapper): write the init"
        ),
    ])
    func whatItCannotReadIsAnError(_ property: String, _ message: String) {
        let column = property.range(of: "var ")!.upperBound.utf16Offset(in: property) + 1
        expand(
            "MemberwiseInit", "struct Counts {\n\(property)\n}",
            diagnostics: [DiagnosticSpec(message: message, line: 3, column: column)])
    }

    @Test(arguments: ["MemberwiseInit", "SnakeCaseCodingKeys"])
    func membersUnderIfAreAnError(_ macro: String) {
        expand(
            macro, "struct Counts {\n    #if DEBUG\n    var traces: Int\n    #endif\n}",
            diagnostics: [
                DiagnosticSpec(message: "@\(macro) does not read members under #if: write it out", line: 3, column: 5)
            ])
    }

    @Test(arguments: ["MemberwiseInit", "SnakeCaseCodingKeys"])
    func onlyStructs(_ macro: String) {
        expand(
            macro, "enum E {}",
            diagnostics: [DiagnosticSpec(message: "@\(macro) applies to a struct", line: 1, column: 1)])
    }

    @Test func snakeCaseKeysForEveryCodedProperty() {
        expand(
            "SnakeCaseCodingKeys",
            """
            struct Call: Codable {
                var callId: String
                var name: String
                let format: Int = 1
                var modelAPI: String?
                var isEmpty: Bool { name.isEmpty }
            }
            """,
            adds: """
                enum CodingKeys: String, CodingKey, CaseIterable {
                    case callId = "call_id"
                    case name
                    case modelAPI = "model_api"
                }
                """)
    }

    /// A `@CodedFlat` property has no key: it codes itself through the same decoder and
    /// encoder, before the type's own keys. However they are written, optionals are coded only
    /// when present, and the mark is known with its module's name.
    @Test func codedFlatPropertyIsCodedBesideTheKeys() {
        expand(
            "SnakeCaseCodingKeys",
            """
            public struct Paused: Codable {
                @BridgeCore.CodedFlat public var position: Position
                public var pausedAt: Date
                public var note: String?
                public var count: Swift.Optional<Int>
                public var limit: Int!
            }
            """,
            adds: """
                enum CodingKeys: String, CodingKey, CaseIterable {
                    case pausedAt = "paused_at"
                    case note
                    case count
                    case limit
                }

                public init(from decoder: any Decoder) throws {
                    self.position = try Position(from: decoder)
                    let c = try decoder.container(keyedBy: CodingKeys.self)
                    self.pausedAt = try c.decode(Date.self, forKey: .pausedAt)
                    self.note = try c.decodeIfPresent(String.self, forKey: .note)
                    self.count = try c.decodeIfPresent(Int.self, forKey: .count)
                    self.limit = try c.decodeIfPresent(Int.self, forKey: .limit)
                }

                public func encode(to encoder: any Encoder) throws {
                    try self.position.encode(to: encoder)
                    var c = encoder.container(keyedBy: CodingKeys.self)
                    try c.encode(self.pausedAt, forKey: .pausedAt)
                    try c.encodeIfPresent(self.note, forKey: .note)
                    try c.encodeIfPresent(self.count, forKey: .count)
                    try c.encodeIfPresent(self.limit, forKey: .limit)
                }
                """)
    }

    /// An attribute under `#if` is one `@MemberwiseInit` cannot read.
    @Test func anAttributeUnderIfIsAnError() {
        expand(
            "MemberwiseInit", "struct Paused {\n    #if DEBUG\n    @Traced\n    #endif\n    var position: Int\n}",
            diagnostics: [
                DiagnosticSpec(
                    message:
                        "@MemberwiseInit does not read 'position''s attributes (a property wrapper): write the init",
                    line: 6, column: 9)
            ])
    }

    @Test(arguments: [
        (
            "@CodedFlat var position: Position?\n    var at: Date",
            "@CodedFlat cannot code 'position', an optional, flat: its keys would be absent with it", 20
        ),
        (
            "@CodedFlat var position: Position\n    var at = Date()",
            "@SnakeCaseCodingKeys with a @CodedFlat property decodes 'at' by its type: write it out", 9
        ),
        // Synthesized `Codable` would code the wrapper; the written code would code its value.
        (
            "@CodedFlat var position: Position\n    @Traced var at: Date",
            "@SnakeCaseCodingKeys with a @CodedFlat property writes Codable, and does not read 'at''s attributes (a property wrapper): write the Codable members by hand",
            17
        ),
    ])
    func codedFlatNeedsWhatItCodes(_ members: String, _ message: String, _ column: Int) {
        let line = message.contains("'at'") ? 4 : 3
        expand(
            "SnakeCaseCodingKeys", "struct Paused: Codable {\n    \(members)\n}",
            diagnostics: [DiagnosticSpec(message: message, line: line, column: column)])
    }

    /// `@CodedFlat` under `#if` would leave the property keyed, and its part nested.
    @Test func anAttributeUnderIfIsAnErrorForCodingKeys() {
        expand(
            "SnakeCaseCodingKeys",
            "struct Paused: Codable {\n    #if DEBUG\n    @CodedFlat\n    #endif\n    var position: Position\n}",
            diagnostics: [
                DiagnosticSpec(
                    message:
                        "@SnakeCaseCodingKeys does not read 'position''s attributes under #if: write CodingKeys out",
                    line: 6, column: 9)
            ])
    }

    /// On what the init does not set, the mark would be ignored: the part would not be coded.
    @Test(arguments: [
        "@CodedFlat let position = Position()", "@CodedFlat static var position: Position",
        "@CodedFlat var position: Position { Position() }", "@CodedFlat func position() {}",
    ])
    func codedFlatOnWhatIsNotCodedIsAnError(_ member: String) {
        let plain = member.replacingOccurrences(of: "@CodedFlat ", with: "")
        assertMacroExpansion(
            "@SnakeCaseCodingKeys\nstruct Paused: Codable {\n    \(member)\n    var at: Date\n}",
            expandedSource: """
                struct Paused: Codable {
                    \(plain)
                    var at: Date

                    enum CodingKeys: String, CodingKey, CaseIterable {
                        case at
                    }
                }
                """,
            diagnostics: [
                DiagnosticSpec(
                    message: "@CodedFlat marks a stored instance property an init sets: this one is not coded at all",
                    line: 3, column: 5)
            ],
            macroSpecs: macros.merging(["CodedFlat": MacroSpec(type: CodedFlatMacro.self)]) { a, _ in a },
            failureHandler: { Issue.record(Comment(rawValue: $0.message)) })
    }

    /// Without `@SnakeCaseCodingKeys` the mark would mean nothing, and the value would be nested.
    @Test func codedFlatOutsideSnakeCaseCodingKeysIsAnError() {
        assertMacroExpansion(
            "struct Paused: Codable {\n    @CodedFlat var position: Position\n}",
            expandedSource: "struct Paused: Codable {\n    var position: Position\n}",
            diagnostics: [
                DiagnosticSpec(
                    message: "@CodedFlat means something only in a type with @SnakeCaseCodingKeys", line: 2, column: 5)
            ], macroSpecs: ["CodedFlat": MacroSpec(type: CodedFlatMacro.self)],
            failureHandler: { Issue.record(Comment(rawValue: $0.message)) })
    }

    /// `@MemberwiseInit` takes a `@CodedFlat` property like any other (it is no property wrapper).
    @Test func memberwiseInitTakesACodedFlatProperty() {
        expand(
            "MemberwiseInit", "struct Paused {\n    @CodedFlat var position: Position\n}",
            adds: "public init(\n    position: Position\n) {\n    self.position = position\n}")
    }

    /// Compiled: the flat part's keys sit beside the type's own in one object, both ways.
    @Test func codedFlatCompiled() throws {
        let value = MacroFixture.Paused(position: .init(turnCount: 2, agentName: "a"), pausedAt: 7, note: nil)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let json = String(decoding: try encoder.encode(value), as: UTF8.self)
        #expect(json == #"{"agent_name":"a","paused_at":7,"turn_count":2}"#)
        let back = try JSONDecoder().decode(
            MacroFixture.Paused.self, from: Data(#"{"turn_count":3,"agent_name":"b","paused_at":1,"note":"n"}"#.utf8))
        #expect(back == MacroFixture.Paused(position: .init(turnCount: 3, agentName: "b"), pausedAt: 1, note: "n"))
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(MacroFixture.Paused.self, from: Data(#"{"agent_name":"b","paused_at":1}"#.utf8))
        }
    }

    /// Expands `@SnakeCaseRawValues` on `type` and expects `type` followed by `added` (nothing
    /// added: the type stays as it is).
    func expandRawValues(_ type: String, adds added: String = "", diagnostics: [DiagnosticSpec] = []) {
        assertMacroExpansion(
            "@SnakeCaseRawValues\n" + type, expandedSource: added.isEmpty ? type : type + "\n\n" + added,
            diagnostics: diagnostics, macroSpecs: macros,
            failureHandler: { Issue.record(Comment(rawValue: $0.message)) })
    }

    /// Every case, in order, with its name in snake case (a run of capitals is one word); the
    /// members are as visible as the enum.
    @Test func snakeCaseRawValuesForEveryCase() {
        expandRawValues(
            """
            public enum Check: Sendable, Codable {
                case toolsTraced
                case toolIOCaptured, spend
                case `default`
                var title: String { "t" }
            }
            """,
            adds: """
                extension Check: RawRepresentable {
                    public var rawValue: String {
                        switch self {
                        case .toolsTraced:
                            "tools_traced"
                        case .toolIOCaptured:
                            "tool_io_captured"
                        case .spend:
                            "spend"
                        case .`default`:
                            "default"
                        }
                    }

                    public init?(rawValue: String) {
                        switch rawValue {
                        case "tools_traced":
                            self = .toolsTraced
                        case "tool_io_captured":
                            self = .toolIOCaptured
                        case "spend":
                            self = .spend
                        case "default":
                            self = .`default`
                        default:
                            return nil
                        }
                    }
                }
                """)
    }

    @Test(arguments: [
        (
            "case fast = \"fast\"", 10,
            "@SnakeCaseRawValues spells every raw value: 'fast' has its own, so write them all by hand"
        ),
        ("case call(String)", 10, "@SnakeCaseRawValues cannot give 'call', which has associated values, a raw value"),
        (
            "case tool_name", 10,
            "@SnakeCaseRawValues spells only names of ASCII letters and digits starting lowercase, not 'tool_name'"
        ),
        (
            "case Upper", 10,
            "@SnakeCaseRawValues spells only names of ASCII letters and digits starting lowercase, not 'Upper'"
        ),
        (
            "case naïve", 10,
            "@SnakeCaseRawValues spells only names of ASCII letters and digits starting lowercase, not 'naïve'"
        ),
        ("case toolIO, toolIo", 18, "@SnakeCaseRawValues would spell both 'toolIO' and 'toolIo' as 'tool_io'"),
    ])
    func whatIsNotTheSnakeCaseOfItsNameIsAnError(_ line: String, _ column: Int, _ message: String) {
        expandRawValues(
            "enum Keys {\n    case table\n    \(line)\n}",
            diagnostics: [DiagnosticSpec(message: message, line: 4, column: column)])
    }

    @Test(arguments: [
        (
            "enum Keys: String {\n    case table\n}", "@SnakeCaseRawValues gives the raw values: leave out ': String'",
            2, 12
        ),
        ("struct Keys {}", "@SnakeCaseRawValues applies to an enum", 1, 1),
        (
            "enum Keys: Swift.String {\n    case table\n}",
            "@SnakeCaseRawValues gives the raw values: leave out ': String'",
            2, 12
        ),
        (
            "enum CodingKeys: CodingKey {\n    case turnEventId\n}",
            "@SnakeCaseRawValues cannot spell a CodingKey, whose keys are its case names: use @SnakeCaseCodingKeys",
            2, 18
        ),
        (
            "enum Keys {\n    #if DEBUG\n    case table\n    #endif\n}",
            "@SnakeCaseRawValues does not read members under #if: write it out", 3, 5
        ),
    ])
    func whatItCannotReadIsNoEnumOfSnakeCaseNames(_ type: String, _ message: String, _ line: Int, _ column: Int) {
        expandRawValues(type, diagnostics: [DiagnosticSpec(message: message, line: line, column: column)])
    }

    /// Expanded by the compiler: the conformance behaves as a `String`-backed enum's, nested
    /// and through a protocol that refines `RawRepresentable`.
    @Test func snakeCaseRawValuesCompiled() throws {
        #expect(MacroFixture.Setting.allCases.map(\.rawValue) == ["top_p", "tool_io_captured", "seed"])
        #expect(MacroFixture.Setting(rawValue: "top_p") == .topP)
        #expect(MacroFixture.Setting(rawValue: "topP") == nil)
        #expect(MacroFixture.Keyed.allNames == ["max_turns", "input"])
        let json = try JSONEncoder().encode([MacroFixture.Setting.toolIOCaptured])
        #expect(String(decoding: json, as: UTF8.self) == #"["tool_io_captured"]"#)
        #expect(try JSONDecoder().decode([MacroFixture.Setting].self, from: json) == [.toolIOCaptured])
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode([MacroFixture.Setting].self, from: Data(#"["toolIOCaptured"]"#.utf8))
        }
    }
}

/// Enums the compiler expands `@SnakeCaseRawValues` on, for `snakeCaseRawValuesCompiled`.
enum MacroFixture {
    @SnakeCaseRawValues
    enum Setting: Sendable, Hashable, CaseIterable, Codable {
        case topP, toolIOCaptured
        case seed
    }

    @MemberwiseInit
    @SnakeCaseCodingKeys
    struct Position: Codable, Equatable {
        var turnCount: Int
        var agentName: String
    }

    @MemberwiseInit
    @SnakeCaseCodingKeys
    struct Paused: Codable, Equatable {
        @CodedFlat var position: Position
        var pausedAt: Int
        var note: String?
    }

    protocol Named: RawRepresentable, CaseIterable where RawValue == String {}

    @SnakeCaseRawValues
    enum Keyed: Named {
        case maxTurns, input

        static var allNames: [String] { allCases.map(\.rawValue) }
    }
}
