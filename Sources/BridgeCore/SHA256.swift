internal import CBridgeCrypto

/// SHA-256 (FIPS 180-4), used for migration checksums and deterministic ids.
///
/// Computed by OpenSSL's libcrypto (the system library libpq and libcurl already load), so
/// bridge carries no crypto code of its own. Tested against the FIPS 180-4 vectors and pinned
/// to the ids and checksums already stored in users' databases.
public enum SHA256 {
    /// The 32-byte digest of `bytes`.
    public static func digest(_ bytes: some Sequence<UInt8>) -> [UInt8] {
        let input = Array(bytes)
        var out = [UInt8](repeating: 0, count: 32)
        input.withUnsafeBytes { data in
            out.withUnsafeMutableBufferPointer { cbridge_sha256(data.baseAddress, data.count, $0.baseAddress) }
        }
        return out
    }

    /// The lowercase hex digest of `bytes`.
    public static func hex(_ bytes: some Sequence<UInt8>) -> String { digest(bytes).hexString }

    /// The lowercase hex digest of the UTF-8 bytes of `text`.
    public static func hex(_ text: String) -> String { hex(text.utf8) }
}

extension Sequence where Element == UInt8 {
    /// Lowercase hexadecimal.
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var chars: [UInt8] = []
        chars.reserveCapacity(underestimatedCount * 2)
        for b in self {
            chars.append(digits[Int(b >> 4)])
            chars.append(digits[Int(b & 0x0f)])
        }
        return String(decoding: chars, as: UTF8.self)
    }
}
