import SwiftCompilerPlugin
import SwiftDiagnostics
import SwiftSyntaxMacros

@main
struct BridgeMacrosPlugin: CompilerPlugin {
    let providingMacros: [any Macro.Type] = [MemberwiseInitMacro.self, SnakeCaseCodingKeysMacro.self]
}

enum BridgeMacroMessage: DiagnosticMessage {
    case notAStruct(String)
    case noType(String)
    case restricted(String)
    case wrapped(String)
    case conditionalMembers(String)

    var message: String {
        switch self {
        case .notAStruct(let macro): "\(macro) applies to a struct"
        case .noType(let name): "@MemberwiseInit needs the type of '\(name)' written out"
        case .restricted(let name):
            "@MemberwiseInit would let callers set '\(name)', which only its type sets: give it an initial value"
        case .wrapped(let name):
            "@MemberwiseInit does not read '\(name)''s attributes (a property wrapper): write the init"
        case .conditionalMembers(let macro): "\(macro) does not read members under #if: write it out"
        }
    }

    var diagnosticID: MessageID {
        switch self {
        case .notAStruct: MessageID(domain: "BridgeMacros", id: "notAStruct")
        case .noType: MessageID(domain: "BridgeMacros", id: "noType")
        case .restricted: MessageID(domain: "BridgeMacros", id: "restricted")
        case .wrapped: MessageID(domain: "BridgeMacros", id: "wrapped")
        case .conditionalMembers: MessageID(domain: "BridgeMacros", id: "conditionalMembers")
        }
    }

    var severity: DiagnosticSeverity { .error }
}
