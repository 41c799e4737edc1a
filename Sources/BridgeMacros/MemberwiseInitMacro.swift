import SwiftDiagnostics
import SwiftSyntax
import SwiftSyntaxMacros

/// `@MemberwiseInit`: the `public init` that Swift synthesizes only as `internal`.
///
/// One parameter per stored property, in declaration order, labelled with the property's name:
/// - a `var` with an initial value takes that value as its default, and an optional property
///   without one defaults to `nil` (the compiler's memberwise init does so for a `var` only);
/// - a `let` with an initial value is not a parameter;
/// - a function-typed property's parameter is `@escaping`.
///
/// Every stored property needs a written type (a macro sees syntax, not inferred types); one
/// without is an error at the property.
struct MemberwiseInitMacro: StoredPropertiesMacro {
    static func members(for properties: [StoredProperty], in context: some MacroExpansionContext) -> [DeclSyntax] {
        var parameters: [String] = []
        var failed = false
        for property in properties {
            guard let type = property.type else {
                context.diagnose(Diagnostic(node: property.binding, message: BridgeMacroMessage.noType(property.name)))
                failed = true
                continue
            }
            var parameter = "\(property.name): \(isFunction(type) ? "@escaping " : "")\(type.trimmedDescription)"
            if let value = property.initializer {
                parameter += " = \(value.trimmedDescription)"
            } else if isOptional(type) {
                parameter += " = nil"
            }
            parameters.append(parameter)
        }
        if failed { return [] }
        let signature = parameters.isEmpty ? "()" : "(\n\(parameters.joined(separator: ",\n"))\n)"
        let body = properties.map { "self.\($0.name) = \($0.name)" }.joined(separator: "\n")
        return ["public init\(raw: signature) {\n\(raw: body)\n}"]
    }

    private static func isOptional(_ type: TypeSyntax) -> Bool {
        type.is(OptionalTypeSyntax.self) || type.is(ImplicitlyUnwrappedOptionalTypeSyntax.self)
            || type.as(IdentifierTypeSyntax.self)?.name.text == "Optional"
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
