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
/// (`callId` is `"call_id"`), for synthesized `Codable`. See
/// `BridgeMacros/SnakeCaseCodingKeysMacro.swift`.
@attached(member, names: named(CodingKeys))
public macro SnakeCaseCodingKeys() = #externalMacro(module: "BridgeMacros", type: "SnakeCaseCodingKeysMacro")
