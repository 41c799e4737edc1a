/// The protobuf wire format (proto3), enough to write and read the few OTLP messages bridge
/// sends and receives. Field numbers and types live with each message's encoder; the tests
/// check every encoded body against the official definitions (Python `opentelemetry-proto`).
public struct ProtobufWriter {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    enum WireType: UInt8 {
        case varint = 0
        case fixed64 = 1
        case lengthDelimited = 2
        case fixed32 = 5
    }

    mutating func tag(_ field: Int, _ type: WireType) { varint(UInt64(field) << 3 | UInt64(type.rawValue)) }

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func littleEndian64(_ v: UInt64) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// A varint field (`int32`, `int64`, `uint64`, `bool`, enums; negative values take 10 bytes,
    /// as proto3 writes them). Proto3 leaves zero out unless `always` (a `oneof` member).
    public mutating func int(_ field: Int, _ value: Int64, always: Bool = false) {
        guard always || value != 0 else { return }
        tag(field, .varint)
        varint(UInt64(bitPattern: value))
    }

    public mutating func bool(_ field: Int, _ value: Bool, always: Bool = false) {
        guard always || value else { return }
        tag(field, .varint)
        varint(value ? 1 : 0)
    }

    /// `fixed64` / `sfixed64`.
    public mutating func fixed64(_ field: Int, _ value: UInt64) {
        guard value != 0 else { return }
        tag(field, .fixed64)
        littleEndian64(value)
    }

    /// `double`. `always` writes a zero too (a `oneof` member or an `optional` field, where
    /// presence means something).
    public mutating func double(_ field: Int, _ value: Double, always: Bool = false) {
        guard always || value.bitPattern != 0 else { return }
        tag(field, .fixed64)
        littleEndian64(value.bitPattern)
    }

    /// `string`: Swift strings are valid UTF-8 by construction, as proto3 requires. `always`
    /// writes an empty one (a `oneof` member).
    public mutating func string(_ field: Int, _ value: String, always: Bool = false) {
        guard always || !value.isEmpty else { return }
        tag(field, .lengthDelimited)
        var s = value
        s.withUTF8 { utf8 in
            varint(UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    /// `bytes`.
    public mutating func data(_ field: Int, _ value: [UInt8]) {
        guard !value.isEmpty else { return }
        tag(field, .lengthDelimited)
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    /// An embedded message (written even when empty: presence matters for messages).
    public mutating func message(_ field: Int, _ build: (inout ProtobufWriter) -> Void) {
        var inner = ProtobufWriter()
        build(&inner)
        tag(field, .lengthDelimited)
        varint(UInt64(inner.bytes.count))
        bytes.append(contentsOf: inner.bytes)
    }

    /// `repeated fixed64`, packed.
    public mutating func packedFixed64(_ field: Int, _ values: [UInt64]) {
        guard !values.isEmpty else { return }
        tag(field, .lengthDelimited)
        varint(UInt64(values.count * 8))
        for v in values { littleEndian64(v) }
    }

    /// `repeated double`, packed.
    public mutating func packedDouble(_ field: Int, _ values: [Double]) {
        packedFixed64(field, values.map(\.bitPattern))
    }
}

/// Reads the fields of one protobuf message (unknown fields and types are skipped, as proto3
/// readers do). Used for the few small answers bridge reads: OTLP partial success and
/// `google.rpc.Status`.
public struct ProtobufReader {
    public enum Value {
        case varint(UInt64)
        case fixed64(UInt64)
        case bytes(ArraySlice<UInt8>)
        case fixed32(UInt32)

        public var data: [UInt8]? { if case .bytes(let b) = self { return Array(b) } else { return nil } }
        public var text: String? { data.map { String(decoding: $0, as: UTF8.self) } }
        public var int64: Int64? { if case .varint(let v) = self { return Int64(bitPattern: v) } else { return nil } }
    }

    /// Every (field number, value) of `bytes` in order; nil when `bytes` is not a well-formed message.
    public static func fields(_ bytes: [UInt8]) -> [(Int, Value)]? {
        var out: [(Int, Value)] = []
        var i = bytes.startIndex
        func varint() -> UInt64? {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while i < bytes.endIndex, shift < 64 {
                let b = bytes[i]
                i += 1
                result |= UInt64(b & 0x7F) << shift
                if b < 0x80 { return result }
                shift += 7
            }
            return nil
        }
        func fixed(_ n: Int) -> UInt64? {
            guard bytes.endIndex - i >= n else { return nil }
            var v: UInt64 = 0
            for k in 0..<n { v |= UInt64(bytes[i + k]) << (8 * UInt64(k)) }
            i += n
            return v
        }
        while i < bytes.endIndex {
            guard let key = varint(), key >> 3 > 0, key >> 3 < (1 << 29) else { return nil }
            let field = Int(key >> 3)
            switch key & 7 {
            case 0:
                guard let v = varint() else { return nil }
                out.append((field, .varint(v)))
            case 1:
                guard let v = fixed(8) else { return nil }
                out.append((field, .fixed64(v)))
            case 2:
                guard let n = varint(), n <= UInt64(bytes.endIndex - i) else { return nil }
                out.append((field, .bytes(bytes[i..<(i + Int(n))])))
                i += Int(n)
            case 5:
                guard let v = fixed(4) else { return nil }
                out.append((field, .fixed32(UInt32(v))))
            default:
                return nil
            }
        }
        return out
    }
}
