import SwiftDiagnostics
import SwiftSyntax
import SwiftSyntaxMacros

/// `@SnakeCaseRawValues`: the `RawRepresentable` conformance of an enum whose raw values are its
/// case names in snake case (`chatCompletions` is `"chat_completions"`), written without the
/// `: String` raw type. It adds `rawValue` and `init?(rawValue:)`; synthesized `Codable` then
/// codes the raw value, as it does for a `String`-backed enum.
///
/// What would not be the case name in snake case is an error, not a guess: a case with a raw
/// value of its own or with associated values, a name that is not ASCII letters and digits
/// starting with a lowercase letter, two names with one snake case, a written `: String`, a
/// `CodingKey` enum (use `@SnakeCaseCodingKeys`), and cases under `#if`. Such an enum keeps its hand-written raw values.
struct SnakeCaseRawValuesMacro: ExtensionMacro {
    static func expansion(
        of node: AttributeSyntax,
        attachedTo declaration: some DeclGroupSyntax,
        providingExtensionsOf type: some TypeSyntaxProtocol,
        conformingTo protocols: [TypeSyntax],
        in context: some MacroExpansionContext
    ) throws -> [ExtensionDeclSyntax] {
        let macro = "@" + node.attributeName.trimmedDescription
        guard let enumeration = declaration.as(EnumDeclSyntax.self) else {
            context.diagnose(Diagnostic(node: node, message: BridgeMacroMessage.notAnEnum(macro)))
            return []
        }
        guard let cases = rawValues(of: enumeration, in: context) else { return [] }
        let access = enumeration.modifiers.contains {
            [.keyword(.public), .keyword(.open)].contains($0.name.tokenKind)
        }
        let modifier = access ? "public " : ""
        let conformance = protocols.isEmpty ? "" : ": RawRepresentable"
        let names = cases.map { "case .\($0.name): \"\($0.rawValue)\"" }
        let values = cases.map { "case \"\($0.rawValue)\": self = .\($0.name)" }
        let decl: DeclSyntax = """
            extension \(type.trimmed)\(raw: conformance) {
            \(raw: modifier)var rawValue: String {
            switch self {
            \(raw: names.joined(separator: "\n"))
            }
            }

            \(raw: modifier)init?(rawValue: String) {
            switch rawValue {
            \(raw: values.joined(separator: "\n"))
            default: return nil
            }
            }
            }
            """
        return decl.as(ExtensionDeclSyntax.self).map { [$0] } ?? []
    }

    /// Each case's name (as Swift spells it, backticks included) and raw value, in declaration
    /// order; nil after diagnosing what the macro cannot spell.
    private static func rawValues(of enumeration: EnumDeclSyntax, in context: some MacroExpansionContext)
        -> [(name: String, rawValue: String)]?
    {
        var failed = false
        func fail(_ node: some SyntaxProtocol, _ message: BridgeMacroMessage) {
            context.diagnose(Diagnostic(node: node, message: message))
            failed = true
        }
        if let inherited = enumeration.inheritanceClause?.inheritedTypes.first(where: {
            unqualifiedName($0.type) == "String"
        }) {
            fail(inherited, .writtenRawType)
        }
        // A `CodingKey` enum's keys are its case names whatever `rawValue` says (Swift derives
        // its `stringValue` from the names), so a stored format would silently change.
        if let inherited = enumeration.inheritanceClause?.inheritedTypes.first(where: {
            unqualifiedName($0.type) == "CodingKey"
        }) {
            fail(inherited, .codingKey)
        }
        var cases: [(name: String, rawValue: String)] = []
        var seen: [String: String] = [:]
        for member in enumeration.memberBlock.members {
            if member.decl.is(IfConfigDeclSyntax.self) {
                fail(member, .conditionalMembers("@SnakeCaseRawValues"))
                continue
            }
            guard let declaration = member.decl.as(EnumCaseDeclSyntax.self) else { continue }
            for element in declaration.elements {
                let name = element.name.identifier?.name ?? element.name.text
                let rawValue = SnakeCaseCodingKeysMacro.snakeCase(name)
                if element.rawValue != nil {
                    fail(element, .explicitRawValue(name))
                } else if element.parameterClause != nil {
                    fail(element, .associatedValues(name))
                } else if !isCamelCase(name) {
                    fail(element, .notCamelCase(name))
                } else if let other = seen.updateValue(name, forKey: rawValue) {
                    fail(element, .sameRawValue(other, name, rawValue))
                } else {
                    cases.append((element.name.trimmedDescription, rawValue))
                }
            }
        }
        return failed ? nil : cases
    }

    /// ASCII letters and digits, starting with a lowercase letter: what snake case spells
    /// without losing anything (no `_`, no letter whose lowercase is another length).
    private static func isCamelCase(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, ("a"..."z").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
        }
    }
}
