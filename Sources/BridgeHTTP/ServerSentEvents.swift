import BridgeCore
import FoundationEssentials

/// One server-sent event (`text/event-stream`): its `event:` name (nil when the server sent
/// none, i.e. `message`), its `data:` lines joined with `\n`, and its `id:`.
@MemberwiseInit
public struct ServerSentEvent: Sendable, Equatable {
    public var event: String? = nil
    public var data: String
    public var id: String? = nil
}

/// An incremental, bounded parser of `text/event-stream` bodies, after the WHATWG HTML
/// standard's "event stream interpretation": lines end in CRLF, LF or CR (also when a chunk
/// ends between CR and LF); `field: value` with one optional space after the colon; lines
/// starting with `:` are comments (keep-alives); a blank line dispatches the event, unless it
/// had no `data`. `retry:` and unknown fields are ignored.
///
/// Feed it chunks as they arrive (any split); it keeps at most `maxEventBytes` of one
/// unfinished event and fails with `SSEError.eventTooLarge` beyond that, so a server cannot
/// make it buffer without bound.
public struct SSEParser: Sendable {
    public let maxEventBytes: Int
    private var line: [UInt8] = []
    private var data: [UInt8] = []
    private var hasData = false
    private var event: String?
    private var id: String?
    private var afterCR = false
    private var atStart = true
    /// Events dispatched so far.
    public private(set) var eventCount = 0

    public init(maxEventBytes: Int = 16 << 20) { self.maxEventBytes = max(1024, maxEventBytes) }

    /// True when bytes of an event that was not dispatched yet have been read (a stream that
    /// ends now was cut mid-event).
    public var isMidEvent: Bool { !line.isEmpty || hasData || event != nil || id != nil }

    /// Parses `bytes`, calling `emit` for each completed event in order. An error thrown by
    /// `emit` stops the parse and is rethrown (as `SSEError.consumer`).
    public mutating func feed(
        _ bytes: UnsafeRawBufferPointer, _ emit: (ServerSentEvent) throws -> Void
    ) throws(SSEError) {
        var i = bytes.startIndex
        // A UTF-8 byte order mark before the first line is ignored.
        if atStart, !bytes.isEmpty {
            atStart = false
            if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { i += 3 }
        }
        while i < bytes.endIndex {
            let b = bytes[i]
            i += 1
            if b == 0x0A, afterCR {
                afterCR = false
                continue
            }
            afterCR = false
            if b == 0x0A || b == 0x0D {
                afterCR = b == 0x0D
                try endLine(emit)
                continue
            }
            line.append(b)
            if line.count + data.count > maxEventBytes { throw .eventTooLarge(limit: maxEventBytes) }
        }
    }

    /// The events of a whole body (an answer already read): as `feed`, and a last event without
    /// its closing blank line still counts.
    public static func events(in body: [UInt8]) -> [ServerSentEvent] {
        var parser = SSEParser(maxEventBytes: body.count + 1024)
        var out: [ServerSentEvent] = []
        try? (body + [0x0A, 0x0A]).withUnsafeBytes { try parser.feed($0) { out.append($0) } }
        return out
    }

    private mutating func endLine(_ emit: (ServerSentEvent) throws -> Void) throws(SSEError) {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            if hasData {
                if data.last == 0x0A { data.removeLast() }
                let e = ServerSentEvent(event: event, data: String(decoding: data, as: UTF8.self), id: id)
                eventCount += 1
                data.removeAll(keepingCapacity: true)
                hasData = false
                event = nil
                id = nil
                do { try emit(e) } catch { throw .consumer(error) }
            } else {
                event = nil
                id = nil
            }
            return
        }
        if line[0] == UInt8(ascii: ":") { return }
        let colon = line.firstIndex(of: UInt8(ascii: ":"))
        let name = colon.map { line[..<$0] } ?? line[...]
        var value = colon.map { line[line.index(after: $0)...] } ?? []
        if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
        switch String(decoding: name, as: UTF8.self) {
        case "data":
            data.append(contentsOf: value)
            data.append(0x0A)
            hasData = true
            if data.count > maxEventBytes { throw .eventTooLarge(limit: maxEventBytes) }
        case "event": event = String(decoding: value, as: UTF8.self)
        case "id": if !value.contains(0) { id = String(decoding: value, as: UTF8.self) }
        default: break
        }
    }
}

/// Why `SSEParser.feed` stopped.
public enum SSEError: Error, CustomStringConvertible {
    /// One event (its unfinished lines and data) grew past the limit.
    case eventTooLarge(limit: Int)
    /// The consumer of the events threw.
    case consumer(any Error)

    public var description: String {
        switch self {
        case .eventTooLarge(let limit): return "a server-sent event exceeds \(limit) bytes"
        case .consumer(let error): return "\(error)"
        }
    }
}
