// BridgeHTTP: see Package.swift for this layer's role.
