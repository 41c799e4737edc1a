import SwiftCompilerPlugin
import SwiftDiagnostics
import SwiftSyntaxMacros

@main
struct BridgeMacrosPlugin: CompilerPlugin {
    let providingMacros: [any Macro.Type] = [
        MemberwiseInitMacro.self, SnakeCaseCodingKeysMacro.self, SnakeCaseRawValuesMacro.self, CodedFlatMacro.self,
    ]
}

enum BridgeMacroMessage: DiagnosticMessage {
    case notAStruct(String)
    case noType(String)
    case restricted(String)
    case wrapped(String)
    case conditionalMembers(String)
    case notAnEnum(String)
    case writtenRawType
    case explicitRawValue(String)
    case associatedValues(String)
    case notCamelCase(String)
    case sameRawValue(String, String, String)
    case flatNoType(String)
    case flatOptional(String)
    case flatWithoutCodingKeys
    case flatNotCoded
    case codedWrapped(String)
    case conditionalAttributes(String)
    case codingKey

    var message: String {
        switch self {
        case .notAStruct(let macro): "\(macro) applies to a struct"
        case .noType(let name): "@MemberwiseInit needs the type of '\(name)' written out"
        case .restricted(let name):
            "@MemberwiseInit would let callers set '\(name)', which only its type sets: give it an initial value"
        case .wrapped(let name):
            "@MemberwiseInit does not read '\(name)''s attributes (a property wrapper): write the init"
        case .conditionalMembers(let macro): "\(macro) does not read members under #if: write it out"
        case .notAnEnum(let macro): "\(macro) applies to an enum"
        case .writtenRawType: "@SnakeCaseRawValues gives the raw values: leave out ': String'"
        case .explicitRawValue(let name):
            "@SnakeCaseRawValues spells every raw value: '\(name)' has its own, so write them all by hand"
        case .associatedValues(let name):
            "@SnakeCaseRawValues cannot give '\(name)', which has associated values, a raw value"
        case .notCamelCase(let name):
            "@SnakeCaseRawValues spells only names of ASCII letters and digits starting lowercase, not '\(name)'"
        case .sameRawValue(let first, let second, let rawValue):
            "@SnakeCaseRawValues would spell both '\(first)' and '\(second)' as '\(rawValue)'"
        case .flatNoType(let name):
            "@SnakeCaseCodingKeys with a @CodedFlat property decodes '\(name)' by its type: write it out"
        case .flatOptional(let name):
            "@CodedFlat cannot code '\(name)', an optional, flat: its keys would be absent with it"
        case .flatWithoutCodingKeys: "@CodedFlat means something only in a type with @SnakeCaseCodingKeys"
        case .flatNotCoded:
            "@CodedFlat marks a stored instance property an init sets: this one is not coded at all"
        case .codedWrapped(let name):
            "@SnakeCaseCodingKeys with a @CodedFlat property writes Codable, and does not read '\(name)''s attributes (a property wrapper): write the Codable members by hand"
        case .conditionalAttributes(let name):
            "@SnakeCaseCodingKeys does not read '\(name)''s attributes under #if: write CodingKeys out"
        case .codingKey:
            "@SnakeCaseRawValues cannot spell a CodingKey, whose keys are its case names: use @SnakeCaseCodingKeys"
        }
    }

    var diagnosticID: MessageID {
        switch self {
        case .notAStruct: MessageID(domain: "BridgeMacros", id: "notAStruct")
        case .noType: MessageID(domain: "BridgeMacros", id: "noType")
        case .restricted: MessageID(domain: "BridgeMacros", id: "restricted")
        case .wrapped: MessageID(domain: "BridgeMacros", id: "wrapped")
        case .conditionalMembers: MessageID(domain: "BridgeMacros", id: "conditionalMembers")
        case .notAnEnum: MessageID(domain: "BridgeMacros", id: "notAnEnum")
        case .writtenRawType: MessageID(domain: "BridgeMacros", id: "writtenRawType")
        case .explicitRawValue: MessageID(domain: "BridgeMacros", id: "explicitRawValue")
        case .associatedValues: MessageID(domain: "BridgeMacros", id: "associatedValues")
        case .notCamelCase: MessageID(domain: "BridgeMacros", id: "notCamelCase")
        case .sameRawValue: MessageID(domain: "BridgeMacros", id: "sameRawValue")
        case .flatNoType: MessageID(domain: "BridgeMacros", id: "flatNoType")
        case .flatOptional: MessageID(domain: "BridgeMacros", id: "flatOptional")
        case .flatWithoutCodingKeys: MessageID(domain: "BridgeMacros", id: "flatWithoutCodingKeys")
        case .flatNotCoded: MessageID(domain: "BridgeMacros", id: "flatNotCoded")
        case .codedWrapped: MessageID(domain: "BridgeMacros", id: "codedWrapped")
        case .conditionalAttributes: MessageID(domain: "BridgeMacros", id: "conditionalAttributes")
        case .codingKey: MessageID(domain: "BridgeMacros", id: "codingKey")
        }
    }

    var severity: DiagnosticSeverity { .error }
}
