import BridgeCore
import BridgeTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension RawClient {
    /// Reads until what was read contains `marker` (or the server closes, or the receive timeout).
    func read(until marker: String) -> String {
        var data = [UInt8]()
        var byte: UInt8 = 0
        while !String(decoding: data, as: UTF8.self).contains(marker) {
            let n = recv(fd, &byte, 1, 0)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            data.append(byte)
        }
        return String(decoding: data, as: UTF8.self)
    }
}

/// bridge's one HTTP server (behind `/metrics` and the tests' stand-ins), over raw sockets: what
/// a connection carries, and what it refuses. `MetricsServerTests` covers its limits.
@Suite(.serialized)
struct HTTPServerTests {
    /// Echoes the method, target, connection and body.
    static func echo(dispatch: HTTPServer.Dispatch = .inline, limits: HTTPServer.Limits = HTTPServer.Limits()) throws
        -> HTTPServer
    {
        try HTTPServer(host: "127.0.0.1", port: "0", limits: limits, dispatch: dispatch) { request, exchange in
            let text = "\(request.method) \(request.target) #\(request.connectionID) \(request.bodyText)"
            exchange.respond(.text(text, status: 200), close: request.header("Connection") == "close")
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func oneConnectionCarriesPipelinedRequestsInOrder() async throws {
        let server = try Self.echo()
        defer { server.stop() }
        let answer = try await RawClient.exchange(
            port: server.port,
            "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nonePOST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\ntwo"
                + "GET /c?x=1 HTTP/1.1\r\nConnection: close\r\n\r\n")
        #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(answer)")
        #expect(answer.contains("\r\n\r\nPOST /a #1 oneHTTP/1.1 200 OK\r\n"))
        #expect(answer.contains("\r\n\r\nPOST /b #1 twoHTTP/1.1 200 OK\r\n"))
        #expect(answer.hasSuffix("Connection: close\r\n\r\nGET /c?x=1 #1 "))
        #expect(server.connectionCount == 1)
    }

    @Test(.timeLimit(.minutes(1)))
    func expectContinueGets100BeforeTheBodyIsSent() async throws {
        let server = try Self.echo(dispatch: .threadPerRequest)
        defer { server.stop() }
        let (interim, answer) = try await OffPool.run {
            let client = try RawClient(port: server.port)
            client.send("PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n")
            let interim = client.read(until: "\r\n\r\n")
            client.send("hello")
            return (interim, client.readAll())
        }
        #expect(interim == "HTTP/1.1 100 Continue\r\n\r\n")
        #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n") && answer.hasSuffix("PUT /x #1 hello"))
    }

    @Test(.timeLimit(.minutes(1)))
    func unreadableRequestsAreRefusedAndClosed() async throws {
        var limits = HTTPServer.Limits()
        limits.maxBody = 10
        let server = try Self.echo(limits: limits)
        defer { server.stop() }
        let cases = [
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501),
            ("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world", 413),
            ("GET /\r\n\r\n", 400),
        ]
        for (request, status) in cases {
            let answer = try await RawClient.exchange(port: server.port, request)
            #expect(answer.hasPrefix("HTTP/1.1 \(status) "), "\(request): \(answer)")
            #expect(answer.contains("Connection: close\r\n"))
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func aResponderOnItsOwnThreadAnswersInPieces() async throws {
        let server = try HTTPServer(host: "127.0.0.1", port: "0", dispatch: .threadPerRequest) { _, exchange in
            exchange.send(HTTPServerResponse(status: 200, chunked: true).encodedHead(close: true))
            for part in ["a", "bc", "def"] { exchange.send(HTTPServerResponse.chunk(Array(part.utf8))) }
            exchange.send(HTTPServerResponse.lastChunk)
            exchange.end(close: true)
        }
        defer { server.stop() }
        let answer = try await RawClient.exchange(port: server.port, "GET / HTTP/1.1\r\n\r\n")
        #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"))
        #expect(answer.hasSuffix("\r\n\r\n1\r\na\r\n2\r\nbc\r\n3\r\ndef\r\n0\r\n\r\n"))
    }
}
