import SwiftDiagnostics
import SwiftSyntax
import SwiftSyntaxMacros

/// `@SnakeCaseCodingKeys`: the `CodingKeys` of a type whose JSON keys are its stored properties'
/// names in snake case (`callId` is `call_id`, `modelAPI` is `model_api`), for synthesized
/// `Codable`.
///
/// Every stored property that synthesized `Codable` codes is a key (a `let` with an initial
/// value is not). The keys are part of stored formats (journals, checkpoints): renaming a
/// property renames its key, which is why `StoredFormatTests` pins them.
///
/// A property marked `@CodedFlat` has no key: its value is coded through the type's own decoder
/// and encoder, so its keys sit beside the type's in one object (a part two stored types share,
/// such as `RunPosition`). The macro then writes `init(from:)` and `encode(to:)` too, which is
/// also why such a type needs `@MemberwiseInit` for its memberwise init.
struct SnakeCaseCodingKeysMacro: StoredPropertiesMacro {
    static func members(for properties: [StoredProperty], in context: some MacroExpansionContext) -> [DeclSyntax] {
        // An attribute under `#if` may be `@CodedFlat`: the property would be keyed, and nested.
        let unread = properties.filter { $0.attributes.contains(StoredProperty.conditionalAttribute) }
        for property in unread {
            context.diagnose(
                Diagnostic(node: property.binding, message: BridgeMacroMessage.conditionalAttributes(property.name)))
        }
        if !unread.isEmpty { return [] }
        let keyed = properties.filter { !$0.isCodedFlat }
        let cases = keyed.map { property in
            let key = snakeCase(property.name)
            return key == property.name ? "case \(key)" : "case \(property.name) = \"\(key)\""
        }
        let codingKeys: DeclSyntax =
            "enum CodingKeys: String, CodingKey, CaseIterable {\n\(raw: cases.joined(separator: "\n"))\n}"
        guard properties.contains(where: \.isCodedFlat) else { return [codingKeys] }
        guard let coding = flatCoding(properties, in: context) else { return [] }
        return [codingKeys] + coding
    }

    /// With a `@CodedFlat` property, the `Codable` members Swift would synthesize, except that
    /// the flat property codes itself through the same decoder and encoder (its keys sit beside
    /// the type's own in one object). A type is needed for each decoded property (a macro sees
    /// no inferred types); an optional is coded only when present, as synthesized `Codable`
    /// does; a flat property cannot be optional (absent, its keys would be too).
    private static func flatCoding(_ properties: [StoredProperty], in context: some MacroExpansionContext)
        -> [DeclSyntax]?
    {
        // The flat properties first: each takes the decoder's and the encoder's (one) object
        // before the type's own container does.
        var (flatDecode, flatEncode, decode, encode) = ([String](), [String](), [String](), [String]())
        var failed = false
        for property in properties {
            guard let type = property.type else {
                context.diagnose(
                    Diagnostic(node: property.binding, message: BridgeMacroMessage.flatNoType(property.name)))
                failed = true
                continue
            }
            let name = property.name
            // Synthesized `Codable` codes a property wrapper itself; this code would code its value.
            if property.hasUnknownAttributes {
                context.diagnose(Diagnostic(node: property.binding, message: BridgeMacroMessage.codedWrapped(name)))
                failed = true
                continue
            }
            let wrapped = optionalWrapped(type)
            if property.isCodedFlat {
                if wrapped != nil {
                    context.diagnose(Diagnostic(node: property.binding, message: BridgeMacroMessage.flatOptional(name)))
                    failed = true
                }
                flatDecode.append("self.\(name) = try \(type.trimmedDescription)(from: decoder)")
                flatEncode.append("try self.\(name).encode(to: encoder)")
            } else if let wrapped {
                decode.append("self.\(name) = try c.decodeIfPresent(\(wrapped).self, forKey: .\(name))")
                encode.append("try c.encodeIfPresent(self.\(name), forKey: .\(name))")
            } else {
                decode.append("self.\(name) = try c.decode(\(type.trimmedDescription).self, forKey: .\(name))")
                encode.append("try c.encode(self.\(name), forKey: .\(name))")
            }
        }
        if failed { return nil }
        return [
            """
            public init(from decoder: any Decoder) throws {
            \(raw: flatDecode.joined(separator: "\n"))
            let c = try decoder.container(keyedBy: CodingKeys.self)
            \(raw: decode.joined(separator: "\n"))
            }
            """,
            """
            public func encode(to encoder: any Encoder) throws {
            \(raw: flatEncode.joined(separator: "\n"))
            var c = encoder.container(keyedBy: CodingKeys.self)
            \(raw: encode.joined(separator: "\n"))
            }
            """,
        ]
    }

    /// `T` of `T?`, `T!`, `Optional<T>` or `Swift.Optional<T>`; nil for any other type (a
    /// typealias of an optional is not seen as one: write the optional out).
    private static func optionalWrapped(_ type: TypeSyntax) -> String? {
        if let optional = type.as(OptionalTypeSyntax.self) { return optional.wrappedType.trimmedDescription }
        if let unwrapped = type.as(ImplicitlyUnwrappedOptionalTypeSyntax.self) {
            return unwrapped.wrappedType.trimmedDescription
        }
        let arguments =
            type.as(IdentifierTypeSyntax.self)?.genericArgumentClause?.arguments
            ?? type.as(MemberTypeSyntax.self)?.genericArgumentClause?.arguments
        guard unqualifiedName(type) == "Optional", let arguments, arguments.count == 1, let only = arguments.first
        else { return nil }
        return only.argument.trimmedDescription
    }

    /// `callId` → `call_id`; a run of capitals is one word (`modelAPI` → `model_api`,
    /// `streamableHTTP` → `streamable_http`, `URLPath` → `url_path`).
    static func snakeCase(_ name: String) -> String {
        let characters = Array(name)
        var result = ""
        for (index, character) in characters.enumerated() {
            guard character.isUppercase else {
                result.append(character)
                continue
            }
            if index > 0 {
                let previous = characters[index - 1]
                let next = index + 1 < characters.count ? characters[index + 1] : nil
                if previous.isLowercase || previous.isNumber || (previous.isUppercase && next?.isLowercase == true) {
                    result.append("_")
                }
            }
            result += character.lowercased()
        }
        return result
    }
}

/// `@CodedFlat`: marks a stored property that `@SnakeCaseCodingKeys` codes flat. It adds nothing
/// itself; on a property of a type without `@SnakeCaseCodingKeys` it is an error (it would mean
/// nothing there, and the value would be nested), and so it is on anything the type's init does
/// not set (a `let` with a value, a `static`, `lazy` or computed property: it is not coded at all).
struct CodedFlatMacro: PeerMacro {
    static let name = "CodedFlat"

    static func expansion(
        of node: AttributeSyntax, providingPeersOf declaration: some DeclSyntaxProtocol,
        in context: some MacroExpansionContext
    ) throws -> [DeclSyntax] {
        let type = context.lexicalContext.first?.asProtocol(WithAttributesSyntax.self)
        let hasCodingKeysMacro = type?.attributes.contains {
            $0.as(AttributeSyntax.self).map { unqualifiedName($0.attributeName) } == "SnakeCaseCodingKeys"
        }
        if hasCodingKeysMacro != true {
            context.diagnose(Diagnostic(node: node, message: BridgeMacroMessage.flatWithoutCodingKeys))
        }
        let stored = declaration.as(VariableDeclSyntax.self).map(StoredProperty.all(of:)) ?? []
        if stored.isEmpty || !stored.allSatisfy(\.isSettable) {
            context.diagnose(Diagnostic(node: node, message: BridgeMacroMessage.flatNotCoded))
        }
        return []
    }
}
