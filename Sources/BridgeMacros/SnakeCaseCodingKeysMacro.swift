import SwiftSyntax
import SwiftSyntaxMacros

/// `@SnakeCaseCodingKeys`: the `CodingKeys` of a type whose JSON keys are its stored properties'
/// names in snake case (`callId` is `call_id`, `modelAPI` is `model_api`), for synthesized
/// `Codable`.
///
/// Every stored property that synthesized `Codable` codes is a key (a `let` with an initial
/// value is not). The keys are part of stored formats (journals, checkpoints): renaming a
/// property renames its key, which is why `StoredFormatTests` pins them.
struct SnakeCaseCodingKeysMacro: StoredPropertiesMacro {
    static func members(for properties: [StoredProperty], in context: some MacroExpansionContext) -> [DeclSyntax] {
        let cases = properties.map { property in
            let key = snakeCase(property.name)
            return key == property.name ? "case \(key)" : "case \(property.name) = \"\(key)\""
        }
        return ["enum CodingKeys: String, CodingKey, CaseIterable {\n\(raw: cases.joined(separator: "\n"))\n}"]
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
