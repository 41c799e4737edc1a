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

    var message: String {
        switch self {
        case .notAStruct(let macro): "\(macro) applies to a struct"
        case .noType(let name): "@MemberwiseInit needs the type of '\(name)' written out"
        }
    }

    var diagnosticID: MessageID {
        switch self {
        case .notAStruct: MessageID(domain: "BridgeMacros", id: "notAStruct")
        case .noType: MessageID(domain: "BridgeMacros", id: "noType")
        }
    }

    var severity: DiagnosticSeverity { .error }
}
