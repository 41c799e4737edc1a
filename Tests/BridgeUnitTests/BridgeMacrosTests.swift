import SwiftSyntaxMacroExpansion
import SwiftSyntaxMacrosGenericTestSupport
import Testing

@testable import BridgeMacros

@Suite struct BridgeMacrosTests {
    let macros: [String: MacroSpec] = [
        "MemberwiseInit": MacroSpec(type: MemberwiseInitMacro.self),
        "SnakeCaseCodingKeys": MacroSpec(type: SnakeCaseCodingKeysMacro.self),
    ]

    /// Expands `@attribute` on `type` and expects `type` with `added` as its last members, after a
    /// blank line (nothing added: the type stays as it is).
    func expand(_ attribute: String, _ type: String, adds added: String = "", diagnostics: [DiagnosticSpec] = []) {
        var expanded = type
        if !added.isEmpty {
            let members = added.split(separator: "\n").map { "    " + $0 }
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
}
