// The macros the libraries use; their implementations (BridgeMacros) run in the compiler.

/// Adds the `public init` that takes every stored property, in declaration order, with the
/// property's initial value as the parameter's default (an optional defaults to `nil`).
///
/// Swift synthesizes this init only as `internal`; a type built by other modules would
/// otherwise repeat each property three times by hand. Each stored property needs a written
/// type. See `BridgeMacros/MemberwiseInitMacro.swift`.
@attached(member, names: named(init))
public macro MemberwiseInit() = #externalMacro(module: "BridgeMacros", type: "MemberwiseInitMacro")

/// Adds `enum CodingKeys` with one key per coded stored property, named in snake case
/// (`callId` is `"call_id"`), for synthesized `Codable`. With a `@CodedFlat` property it adds
/// `init(from:)` and `encode(to:)` as well. See `BridgeMacros/SnakeCaseCodingKeysMacro.swift`.
@attached(member, names: named(CodingKeys), named(init(from:)), named(encode(to:)))
public macro SnakeCaseCodingKeys() = #externalMacro(module: "BridgeMacros", type: "SnakeCaseCodingKeysMacro")

/// Marks a stored property of a `@SnakeCaseCodingKeys` type that is coded flat: its value's
/// keys sit beside the type's own in one JSON object, not under a key of its own (a part that
/// two stored types share). The macro cannot see the part's keys: one that is also the type's
/// would be written twice, so a stored type pins its keys as unique (`StoredFormatTests`).
/// Adds nothing itself.
@attached(peer)
public macro CodedFlat() = #externalMacro(module: "BridgeMacros", type: "CodedFlatMacro")

/// Adds the `RawRepresentable` conformance (`rawValue`, `init?(rawValue:)`) of an enum written
/// without `: String` whose raw values are its case names in snake case (`chatCompletions` is
/// `"chat_completions"`); `Codable` then codes the raw value. A case with a raw value of its own
/// or associated values, a name snake case would not spell exactly, cases under `#if` and an
/// enum declared `: CodingKey` (whose keys are its case names: use `@SnakeCaseCodingKeys`) are
/// errors; a `CodingKey` conformance added elsewhere, which the macro cannot see, is not. See
/// `BridgeMacros/SnakeCaseRawValuesMacro.swift`.
@attached(extension, conformances: RawRepresentable, names: named(rawValue), named(init(rawValue:)))
public macro SnakeCaseRawValues() = #externalMacro(module: "BridgeMacros", type: "SnakeCaseRawValuesMacro")
