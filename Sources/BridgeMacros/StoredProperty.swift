import SwiftDiagnostics
import SwiftSyntax
import SwiftSyntaxMacros

/// A macro that adds members to a struct from its settable stored properties (those an init
/// sets and synthesized `Codable` codes); attached to anything but a struct, it is an error.
protocol StoredPropertiesMacro: MemberMacro {
    static func members(for properties: [StoredProperty], in context: some MacroExpansionContext) -> [DeclSyntax]
}

extension StoredPropertiesMacro {
    static func expansion(
        of node: AttributeSyntax,
        providingMembersOf declaration: some DeclGroupSyntax,
        conformingTo protocols: [TypeSyntax],
        in context: some MacroExpansionContext
    ) throws -> [DeclSyntax] {
        guard declaration.is(StructDeclSyntax.self) else {
            let macro = "@" + node.attributeName.trimmedDescription
            context.diagnose(Diagnostic(node: node, message: BridgeMacroMessage.notAStruct(macro)))
            return []
        }
        // Members under `#if` would be left out without a word: of the init, or of the stored format.
        if let conditional = declaration.memberBlock.members.first(where: { $0.decl.is(IfConfigDeclSyntax.self) }) {
            let macro = "@" + node.attributeName.trimmedDescription
            context.diagnose(Diagnostic(node: conditional, message: BridgeMacroMessage.conditionalMembers(macro)))
            return []
        }
        return members(for: StoredProperty.all(of: declaration).filter(\.isSettable), in: context)
    }
}

/// One stored instance property of a type, as its declaration spells it: what both macros
/// build from (a macro sees syntax, not the type checker's view).
struct StoredProperty {
    var name: String
    /// The written type: on the binding, or on a later binding of `var a, b: Int`.
    var type: TypeSyntax?
    var initializer: ExprSyntax?
    var isLet: Bool
    /// `private`, `fileprivate`, or a restricted setter (`private(set)`, `internal(set)`): the
    /// type's own code sets it, not whoever builds the type.
    var isRestricted: Bool
    /// The names of its attributes (`CodedFlat`, or a property wrapper's).
    var attributes: [String]
    var binding: PatternBindingSyntax

    /// Whether the property is set by an init (and coded by synthesized `Codable`): a `let` with
    /// an initial value is not.
    var isSettable: Bool { !(isLet && initializer != nil) }

    /// Marked `@CodedFlat`: `@SnakeCaseCodingKeys` codes its value's keys beside the type's own.
    var isCodedFlat: Bool { attributes.contains(CodedFlatMacro.name) }

    /// Whether it carries an attribute the macros do not know, such as a property wrapper.
    var hasUnknownAttributes: Bool { attributes.contains { $0 != CodedFlatMacro.name } }

    /// Every stored instance property of `declaration`, in declaration order. Computed, `static`,
    /// `class` and `lazy` properties are skipped; `willSet`/`didSet` observers keep a property
    /// stored.
    static func all(of declaration: some DeclGroupSyntax) -> [StoredProperty] {
        declaration.memberBlock.members.flatMap { member in
            member.decl.as(VariableDeclSyntax.self).map(all(of:)) ?? []
        }
    }

    /// The stored instance properties one declaration (`var a, b: Int`) declares; none for a
    /// computed, `static`, `class` or `lazy` one.
    static func all(of variable: VariableDeclSyntax) -> [StoredProperty] {
        guard isInstanceStorage(variable) else { return [] }
        var found: [StoredProperty] = []
        let isLet = variable.bindingSpecifier.tokenKind == .keyword(.let)
        let isRestricted = variable.modifiers.contains {
            [.keyword(.private), .keyword(.fileprivate)].contains($0.name.tokenKind) || $0.detail != nil
        }
        for binding in variable.bindings {
            guard binding.accessorBlock == nil || hasOnlyObservers(binding.accessorBlock),
                let pattern = binding.pattern.as(IdentifierPatternSyntax.self)
            else { continue }
            found.append(
                StoredProperty(
                    name: pattern.identifier.identifier?.name ?? pattern.identifier.trimmed.text,
                    type: binding.typeAnnotation?.type ?? typeOfLaterBinding(binding, in: variable),
                    initializer: binding.initializer?.value, isLet: isLet, isRestricted: isRestricted,
                    attributes: variable.attributes.map {
                        $0.as(AttributeSyntax.self).map { unqualifiedName($0.attributeName) }
                            ?? conditionalAttribute
                    }, binding: binding))
        }
        return found
    }

    /// What `attributes` holds for attributes under `#if`, which the macros cannot read.
    static let conditionalAttribute = "#if"

    private static func isInstanceStorage(_ variable: VariableDeclSyntax) -> Bool {
        !variable.modifiers.contains {
            [.keyword(.static), .keyword(.class), .keyword(.lazy)].contains($0.name.tokenKind)
        }
    }

    private static func hasOnlyObservers(_ block: AccessorBlockSyntax?) -> Bool {
        guard case .accessors(let accessors) = block?.accessors else { return false }
        return accessors.allSatisfy {
            [.keyword(.willSet), .keyword(.didSet)].contains($0.accessorSpecifier.tokenKind)
        }
    }

    private static func typeOfLaterBinding(_ binding: PatternBindingSyntax, in variable: VariableDeclSyntax)
        -> TypeSyntax?
    {
        guard binding.initializer == nil else { return nil }
        let later = variable.bindings.drop { $0.id != binding.id }.dropFirst()
        return later.first { $0.typeAnnotation != nil }?.typeAnnotation?.type
    }
}

/// A type's or attribute's name without its module (`BridgeCore.CodedFlat` is `CodedFlat`,
/// `Swift.String` is `String`): how the macros recognise one however it is written.
func unqualifiedName(_ type: TypeSyntax) -> String {
    if let member = type.as(MemberTypeSyntax.self) { return member.name.text }
    if let identifier = type.as(IdentifierTypeSyntax.self) { return identifier.name.text }
    return type.trimmedDescription
}
