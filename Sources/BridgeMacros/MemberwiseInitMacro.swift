import SwiftDiagnostics
import SwiftSyntax
import SwiftSyntaxMacros

/// `@MemberwiseInit`: the `public init` that Swift synthesizes only as `internal`.
///
/// One parameter per stored property, in declaration order, labelled with the property's name.
/// A parameter has a default only where the declaration writes one: a `var`'s initial value
/// (write `= nil` for an optional that callers may leave out). A `let` with an initial value,
/// and a property only the type's own module sets (`private`, `fileprivate`, `internal(set)`,
/// `private(set)`) that has one, are not parameters. A function-typed property's parameter is
/// `@escaping`.
///
/// What it cannot read right is an error, not a guess: a property without a written type (a
/// macro sees syntax, not inferred types), a restricted property without an initial value, a
/// property wrapper, members under `#if`.
struct MemberwiseInitMacro: StoredPropertiesMacro {
    static func members(for properties: [StoredProperty], in context: some MacroExpansionContext) -> [DeclSyntax] {
        var failed = false
        var parameters: [String] = []
        var assignments: [String] = []
        for property in properties {
            if property.isRestricted && property.initializer != nil { continue }
            let problem: BridgeMacroMessage
            if property.hasUnknownAttributes {
                problem = .wrapped(property.name)
            } else if property.isRestricted {
                problem = .restricted(property.name)
            } else if let type = property.type {
                let value = property.initializer.map { " = \($0.trimmedDescription)" } ?? ""
                parameters.append(
                    "\(property.name): \(isFunction(type) ? "@escaping " : "")\(type.trimmedDescription)\(value)")
                assignments.append("self.\(property.name) = \(property.name)")
                continue
            } else {
                problem = .noType(property.name)
            }
            context.diagnose(Diagnostic(node: property.binding, message: problem))
            failed = true
        }
        if failed { return [] }
        let signature = parameters.isEmpty ? "()" : "(\n\(parameters.joined(separator: ",\n"))\n)"
        let body = assignments.joined(separator: "\n")
        return ["public init\(raw: signature) {\n\(raw: body)\n}"]
    }

    /// A closure type, possibly with attributes (`@Sendable (X) -> Y`) or in parentheses; an
    /// optional closure is not `@escaping`.
    private static func isFunction(_ type: TypeSyntax) -> Bool {
        if type.is(FunctionTypeSyntax.self) { return true }
        if let attributed = type.as(AttributedTypeSyntax.self) { return isFunction(attributed.baseType) }
        if let tuple = type.as(TupleTypeSyntax.self), tuple.elements.count == 1, let only = tuple.elements.first {
            return isFunction(only.type)
        }
        return false
    }
}
