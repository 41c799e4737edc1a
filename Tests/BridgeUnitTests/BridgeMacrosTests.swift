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

    /// Defaults as the compiler's memberwise init has them; closures escape unless optional.
    @Test func everyStoredPropertyInOrderWithItsDefault() {
        expand(
            "MemberwiseInit",
            """
            public struct Limits {
                public var name: String
                public var count: Int = 3
                public var note: String?
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
                    note: String? = nil,
                    id: Int,
                    parent: Int? = nil,
                    seen: Bool = false,
                    a: Int,
                    b: Int,
                    run: @escaping @Sendable (Int) -> Void,
                    done: (() -> Void)? = nil
                ) {
                    self.name = name
                    self.count = count
                    self.note = note
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

    @Test func aPropertyWithoutAWrittenTypeIsAnError() {
        expand(
            "MemberwiseInit", "struct Counts {\n    var traces = 0\n}",
            diagnostics: [
                DiagnosticSpec(message: "@MemberwiseInit needs the type of 'traces' written out", line: 3, column: 9)
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
