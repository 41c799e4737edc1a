// The libcurl engine: its own thread, the transfers, curl's callbacks and the deadlines, around
// one lock; the unsafe C boundary of HTTP stays in this file.
import BridgeCore
import CBridgeCurl
import CBridgeCurlShim
import Foundation

// The machinery under `HTTPClient`: one curl multi handle, one thread that drives it, and
// one `Transfer` object per request. Only the engine's thread touches curl handles; other
// threads hand it work through a locked queue and wake it with `curl_multi_wakeup`.

/// `curl_global_init`, run exactly once, before the first curl handle is created (Swift
/// initialises globals lazily and thread-safely).
let curlGlobalInit: CURLcode = curl_global_init(Int(CURL_GLOBAL_ALL))

/// Milliseconds in `d`, rounded up, at least 1.
func milliseconds(_ d: Duration) -> Int {
    let (s, atto) = d.components
    let ms = s * 1000 + (atto + 999_999_999_999_999) / 1_000_000_000_000_000
    return max(1, Int(clamping: ms))
}

/// One request on its way through the engine.
///
/// Unchecked sendability, confined by hand: the request fields are immutable; `cancelRequested` is guarded by
/// the engine's lock; everything else (buffers, handles, the continuation after submit)
/// is touched only by the engine thread, including from curl's callbacks.
final class Transfer: @unchecked Sendable {
    let method: String
    let url: String
    let headerLines: [String]
    let body: [UInt8]?
    let connectTimeoutMs: Int?
    let readTimeoutSeconds: Int?
    let minimumRate: Int
    let deadline: ContinuousClock.Instant?
    let maxBytes: Int
    let userAgent: String

    let bodyStream: (any HTTPBodyStream)?

    var continuation: CheckedContinuation<Result<HTTPResponse, HTTPError>, Never>?
    var cancelRequested = false

    // Engine thread only.
    var responseBody: [UInt8] = []
    /// The status of the last status line seen (the final response's once the body starts).
    var status = 0
    /// Whether the body goes to `bodyStream` (decided by it before the first body byte).
    var streaming: Bool?
    var streamedBytes = 0
    /// Why `bodyStream` aborted the transfer.
    var streamError: HTTPError?
    var responseHeaders = HTTPHeaders()
    var exceeded = false
    var headerList: UnsafeMutablePointer<curl_slist>?
    var easy: UnsafeMutableRawPointer?
    let errorBuffer: UnsafeMutablePointer<CChar>

    init(request: HTTPRequest, configuration: HTTPClient.Configuration) throws(HTTPError) {
        guard let scheme = request.url.split(separator: ":", maxSplits: 1).first?.lowercased(),
            scheme == "http" || scheme == "https", request.url.contains("://")
        else {
            throw .invalidURL("expected an absolute http:// or https:// URL")
        }
        guard !request.url.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) else {
            throw .invalidURL("URL contains spaces or control characters")
        }
        guard !request.method.rawValue.isEmpty,
            request.method.rawValue.utf8.allSatisfy({ Self.isTokenByte($0) })
        else {
            throw .invalidRequest("bad method")
        }
        var lines: [String] = []
        var hasUserAgent = false
        for (name, value) in request.headers {
            guard !name.isEmpty, name.utf8.allSatisfy({ Self.isTokenByte($0) }) else {
                throw .invalidRequest("bad header name '\(name.prefix(64))'")
            }
            // Never echo the value: it may be a secret.
            guard !value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) else {
                throw .invalidRequest("the value of header '\(name)' contains a line break")
            }
            if name.lowercased() == "user-agent" { hasUserAgent = true }
            let trimmed = value.trimmingCharacters(in: .whitespaces)
            // curl removes a header given as "Name:"; "Name;" sends it with an empty value.
            lines.append(trimmed.isEmpty ? "\(name);" : "\(name): \(trimmed)")
        }
        // Don't wait for a `100 Continue` before sending bigger bodies.
        if !request.headers.contains("Expect") { lines.append("Expect:") }
        let timeout = request.timeout
        self.method = request.method.rawValue
        self.url = request.url
        self.headerLines = lines
        self.body = request.body
        self.connectTimeoutMs = (timeout?.connect ?? configuration.timeout.connect).map(milliseconds)
        self.readTimeoutSeconds = (timeout?.read ?? configuration.timeout.read).map { (milliseconds($0) + 999) / 1000 }
        // The rate belongs to the stall window it is measured over.
        self.minimumRate = timeout?.read != nil ? timeout!.minimumRate : configuration.timeout.minimumRate
        self.deadline = request.deadline
        self.maxBytes = max(0, request.maxResponseBytes ?? configuration.maxResponseBytes)
        self.userAgent = hasUserAgent ? "" : configuration.userAgent
        self.bodyStream = request.bodyStream
        self.errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        self.errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    deinit {
        if let headerList { curl_slist_free_all(headerList) }
        errorBuffer.deallocate()
    }

    private static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(b)
        }
    }

    /// The curl error buffer's text, or curl's generic text for `code`.
    func errorText(_ code: CURLcode) -> String {
        let detail = String(cString: errorBuffer).trimmingCharacters(in: .whitespacesAndNewlines)
        return detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
    }
}

/// Body bytes from curl: appended to the transfer's buffer, or the transfer is aborted
/// (by returning a short count) once the cap would be exceeded.
private let writeCallback: cbridge_curl_data_cb = { data, size, count, userdata in
    guard let userdata else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(userdata).takeUnretainedValue()
    let n = size * count
    guard n > 0, let data else { return n }
    if let stream = transfer.bodyStream {
        if transfer.streaming == nil {
            transfer.streaming = stream.begin(status: transfer.status, headers: transfer.responseHeaders)
        }
        if transfer.streaming == true {
            transfer.streamedBytes += n
            if transfer.streamedBytes > transfer.maxBytes {
                transfer.exceeded = true
                return 0
            }
            if let error = stream.receive(UnsafeRawBufferPointer(start: data, count: n)) {
                transfer.streamError = error
                return 0
            }
            return n
        }
    }
    if transfer.responseBody.count + n > transfer.maxBytes {
        transfer.exceeded = true
        return 0
    }
    data.withMemoryRebound(to: UInt8.self, capacity: n) { p in
        transfer.responseBody.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
    }
    return n
}

/// One header line from curl (status lines too). A status line starts a new header block,
/// so only the final response's headers are kept (not `100 Continue`'s).
private let headerCallback: cbridge_curl_data_cb = { data, size, count, userdata in
    guard let userdata else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(userdata).takeUnretainedValue()
    let n = size * count
    guard n > 0, let data else { return n }
    let line = data.withMemoryRebound(to: UInt8.self, capacity: n) { p in
        String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    }.trimmingCharacters(in: .whitespacesAndNewlines)
    if line.hasPrefix("HTTP/") {
        transfer.responseHeaders = HTTPHeaders()
        let parts = line.split(separator: " ", maxSplits: 2)
        transfer.status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
    } else if let colon = line.firstIndex(of: ":") {
        let name = String(line[..<colon]).trimmingCharacters(in: .whitespaces)
        let value = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
        transfer.responseHeaders.add(name, value)
    }
    return n
}

/// Owns the multi handle and its thread.
///
/// Unchecked sendability, confined by hand: `incoming`, `cancellations` and `stopping` are guarded by `lock`;
/// `active` and `idleHandles` belong to the engine thread alone, and so does `multi`, except
/// for `curl_multi_wakeup` (documented thread-safe), which other threads call with `lock`
/// held so that it never races the engine's `curl_multi_cleanup`.
final class CurlMultiEngine: @unchecked Sendable {
    private let lock = NSLock()
    private var incoming: [Transfer] = []
    private var cancellations: [Transfer] = []
    private var stopping = false

    private let multi: UnsafeMutableRawPointer
    private var active: [UnsafeMutableRawPointer: Transfer] = [:]
    private var idleHandles: [UnsafeMutableRawPointer] = []
    private static let maxIdleHandles = 16

    init(configuration: HTTPClient.Configuration) {
        _ = curlGlobalInit
        guard let multi = curl_multi_init() else { fatalError("curl_multi_init failed (out of memory)") }
        self.multi = multi
        _ = cbridge_curl_multi_setopt_long(
            multi, CURLMOPT_MAX_HOST_CONNECTIONS, max(1, configuration.maxConnectionsPerHost))
        _ = cbridge_curl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, max(1, configuration.maxCachedConnections))
        _ = cbridge_curl_multi_setopt_long(multi, CURLMOPT_PIPELINING, Int(CURLPIPE_MULTIPLEX))
        let thread = Thread { [self] in self.run() }
        thread.name = "bridge-http"
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Queues a transfer whose continuation is set; completes it at once after shutdown.
    func submit(_ transfer: Transfer) {
        lock.lock()
        if stopping {
            lock.unlock()
            finish(transfer, .failure(.shutdown))
            return
        }
        incoming.append(transfer)
        // Under the lock: the engine frees `multi` only after it has seen `stopping`.
        curl_multi_wakeup(multi)
        lock.unlock()
    }

    /// Asks the engine thread to abort `transfer` with `.cancelled` (also before it started).
    func cancel(_ transfer: Transfer) {
        lock.lock()
        transfer.cancelRequested = true
        if !stopping {
            cancellations.append(transfer)
            curl_multi_wakeup(multi)
        }
        lock.unlock()
    }

    func shutdown() {
        lock.lock()
        if !stopping {
            stopping = true
            curl_multi_wakeup(multi)
        }
        lock.unlock()
    }

    // MARK: - Engine thread

    private func run() {
        while true {
            lock.lock()
            let newTransfers = incoming
            let cancelled = cancellations
            let stop = stopping
            incoming.removeAll()
            cancellations.removeAll()
            let cancelledBeforeStart = newTransfers.map(\.cancelRequested)
            lock.unlock()

            for (transfer, wasCancelled) in zip(newTransfers, cancelledBeforeStart) {
                if wasCancelled {
                    finish(transfer, .failure(.cancelled))
                } else {
                    start(transfer)
                }
            }
            for transfer in cancelled {
                if let easy = transfer.easy, active[easy] === transfer {
                    complete(easy, .failure(.cancelled))
                }
            }
            if stop {
                for easy in Array(active.keys) { complete(easy, .failure(.shutdown)) }
                for easy in idleHandles { curl_easy_cleanup(easy) }
                idleHandles.removeAll()
                curl_multi_cleanup(multi)
                return
            }

            var running: Int32 = 0
            curl_multi_perform(multi, &running)
            var queued: Int32 = 0
            while let message = curl_multi_info_read(multi, &queued) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
                let code = message.pointee.data.result
                guard let transfer = active[easy] else { continue }
                complete(easy, result(of: transfer, easy: easy, code: code))
            }
            // Wakes early for socket activity, curl's own timers, or `curl_multi_wakeup`.
            curl_multi_poll(multi, nil, 0, active.isEmpty ? 60_000 : 1_000, nil)
        }
    }

    private func start(_ transfer: Transfer) {
        var timeoutMs: Int?
        if let deadline = transfer.deadline {
            let left = deadline - .now
            guard left > .zero else {
                finish(transfer, .failure(.timeout("the request's deadline passed before it was sent")))
                return
            }
            timeoutMs = milliseconds(left)
        }
        guard let easy = takeHandle() else {
            finish(
                transfer,
                .failure(.transport(code: Int(CURLE_OUT_OF_MEMORY.rawValue), message: "curl_easy_init failed")))
            return
        }
        transfer.easy = easy
        // Each step runs even when an earlier one failed; any failure fails the transfer.
        let optionsSet = setOptions(easy, for: transfer, timeoutMs: timeoutMs)
        let headersSet = setHeaders(easy, for: transfer)
        let methodSet = setMethodAndBody(easy, for: transfer)
        guard optionsSet && headersSet && methodSet else {
            transfer.easy = nil
            releaseHandle(easy, transfer: transfer)
            finish(
                transfer,
                .failure(.invalidRequest("curl rejected an option: \(transfer.errorText(CURLE_BAD_FUNCTION_ARGUMENT))"))
            )
            return
        }
        active[easy] = transfer
        let added = curl_multi_add_handle(multi, easy)
        if added != CURLM_OK {
            active[easy] = nil
            transfer.easy = nil
            releaseHandle(easy, transfer: transfer)
            finish(
                transfer,
                .failure(.transport(code: Int(added.rawValue), message: String(cString: curl_multi_strerror(added)))))
        }
    }

    /// An idle handle reset for reuse, or a new one; nil when curl cannot allocate one.
    private func takeHandle() -> UnsafeMutableRawPointer? {
        if let reused = idleHandles.popLast() {
            curl_easy_reset(reused)
            return reused
        }
        return curl_easy_init()
    }

    /// The transfer's URL, protocols, callbacks, limits and timeouts; false when curl
    /// rejects one of them.
    private func setOptions(_ easy: UnsafeMutableRawPointer, for transfer: Transfer, timeoutMs: Int?) -> Bool {
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        var ok = true
        func check(_ code: CURLcode) { if code != CURLE_OK { ok = false } }

        check(cbridge_curl_setopt_string(easy, CURLOPT_URL, transfer.url))
        check(cbridge_curl_setopt_string(easy, CURLOPT_PROTOCOLS_STR, "http,https"))
        check(cbridge_curl_setopt_long(easy, CURLOPT_NOSIGNAL, 1))
        check(cbridge_curl_setopt_long(easy, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2TLS)))
        check(cbridge_curl_setopt_long(easy, CURLOPT_TCP_KEEPALIVE, 1))
        check(cbridge_curl_setopt_string(easy, CURLOPT_ACCEPT_ENCODING, ""))
        check(cbridge_curl_setopt_pointer(easy, CURLOPT_ERRORBUFFER, transfer.errorBuffer))
        check(cbridge_curl_setopt_write_function(easy, CURLOPT_WRITEFUNCTION, writeCallback))
        check(cbridge_curl_setopt_pointer(easy, CURLOPT_WRITEDATA, context))
        check(cbridge_curl_setopt_write_function(easy, CURLOPT_HEADERFUNCTION, headerCallback))
        check(cbridge_curl_setopt_pointer(easy, CURLOPT_HEADERDATA, context))
        check(cbridge_curl_setopt_off_t(easy, CURLOPT_MAXFILESIZE_LARGE, curl_off_t(transfer.maxBytes)))
        if let ms = transfer.connectTimeoutMs { check(cbridge_curl_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, ms)) }
        if let s = transfer.readTimeoutSeconds {
            check(cbridge_curl_setopt_long(easy, CURLOPT_LOW_SPEED_LIMIT, transfer.minimumRate))
            check(cbridge_curl_setopt_long(easy, CURLOPT_LOW_SPEED_TIME, max(1, s)))
        }
        if let ms = timeoutMs { check(cbridge_curl_setopt_long(easy, CURLOPT_TIMEOUT_MS, ms)) }
        if !transfer.userAgent.isEmpty {
            check(cbridge_curl_setopt_string(easy, CURLOPT_USERAGENT, transfer.userAgent))
        }
        return ok
    }

    /// The request's header lines, kept in `transfer.headerList` until the handle is released;
    /// false when curl rejects them.
    private func setHeaders(_ easy: UnsafeMutableRawPointer, for transfer: Transfer) -> Bool {
        var ok = true
        var list: UnsafeMutablePointer<curl_slist>?
        for line in transfer.headerLines {
            guard let appended = curl_slist_append(list, line) else {
                ok = false
                break
            }
            list = appended
        }
        transfer.headerList = list
        if cbridge_curl_setopt_slist(easy, CURLOPT_HTTPHEADER, list) != CURLE_OK { ok = false }
        return ok
    }

    /// The method and the body (copied by curl); false when curl rejects them.
    private func setMethodAndBody(_ easy: UnsafeMutableRawPointer, for transfer: Transfer) -> Bool {
        var ok = true
        func check(_ code: CURLcode) { if code != CURLE_OK { ok = false } }
        switch (transfer.method, transfer.body) {
        case ("GET", nil):
            check(cbridge_curl_setopt_long(easy, CURLOPT_HTTPGET, 1))
        case ("HEAD", nil):
            check(cbridge_curl_setopt_long(easy, CURLOPT_NOBODY, 1))
        case (let method, let body):
            if let body {
                check(cbridge_curl_setopt_off_t(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count)))
                if body.isEmpty {
                    check(cbridge_curl_setopt_string(easy, CURLOPT_COPYPOSTFIELDS, ""))
                } else {
                    body.withUnsafeBytes { raw in
                        check(
                            cbridge_curl_setopt_pointer(
                                easy, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress)))
                    }
                }
            } else if method == "POST" {
                check(cbridge_curl_setopt_off_t(easy, CURLOPT_POSTFIELDSIZE_LARGE, 0))
                check(cbridge_curl_setopt_string(easy, CURLOPT_COPYPOSTFIELDS, ""))
            }
            if method != "POST" {
                check(cbridge_curl_setopt_string(easy, CURLOPT_CUSTOMREQUEST, method))
            }
        }
        return ok
    }

    private func result(of transfer: Transfer, easy: UnsafeMutableRawPointer, code: CURLcode) -> Result<
        HTTPResponse, HTTPError
    > {
        if let error = transfer.streamError { return .failure(error) }
        if transfer.exceeded || code == CURLE_FILESIZE_EXCEEDED {
            return .failure(.tooLarge(limit: transfer.maxBytes))
        }
        switch code {
        case CURLE_OK:
            var status = 0
            _ = cbridge_curl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
            var version = 0
            _ = cbridge_curl_getinfo_long(easy, CURLINFO_HTTP_VERSION, &version)
            let versionText: String
            switch version {
            case Int(CURL_HTTP_VERSION_1_0): versionText = "1.0"
            case Int(CURL_HTTP_VERSION_2_0): versionText = "2"
            case Int(CURL_HTTP_VERSION_3): versionText = "3"
            default: versionText = "1.1"
            }
            return .success(
                HTTPResponse(
                    status: status, headers: transfer.responseHeaders,
                    body: transfer.responseBody, httpVersion: versionText))
        case CURLE_OPERATION_TIMEDOUT:
            return .failure(.timeout(transfer.errorText(code)))
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL:
            return .failure(.invalidURL(transfer.errorText(code)))
        default:
            return .failure(.transport(code: Int(code.rawValue), message: transfer.errorText(code)))
        }
    }

    /// Detaches `easy` from the multi handle and completes its transfer.
    private func complete(_ easy: UnsafeMutableRawPointer, _ result: Result<HTTPResponse, HTTPError>) {
        guard let transfer = active.removeValue(forKey: easy) else { return }
        curl_multi_remove_handle(multi, easy)
        transfer.easy = nil
        releaseHandle(easy, transfer: transfer)
        finish(transfer, result)
    }

    private func releaseHandle(_ easy: UnsafeMutableRawPointer, transfer: Transfer) {
        if let list = transfer.headerList {
            curl_slist_free_all(list)
            transfer.headerList = nil
        }
        if idleHandles.count < Self.maxIdleHandles {
            // Drop the pointers into the transfer before it goes away.
            curl_easy_reset(easy)
            idleHandles.append(easy)
        } else {
            curl_easy_cleanup(easy)
        }
    }

    private func finish(_ transfer: Transfer, _ result: Result<HTTPResponse, HTTPError>) {
        let continuation = transfer.continuation
        transfer.continuation = nil
        transfer.responseBody = []
        continuation?.resume(returning: result)
    }
}
