import ArgumentParser
import BridgeCore
import BridgeMapping
import BridgePostgres
import BridgeWorker
import Foundation

/// Shared by `bridge approvals list`, `bridge approve` and `bridge reject`.
struct ApprovalOptions: ParsableArguments {
    @OptionGroup var connection: ConnectionOptions

    @Option(help: .mappings("its `approvals` section names the table"))
    var mappings: String = "mappings"

    func store() throws -> ApprovalStore {
        let config = try MappingLoader.load(directory: mappings)
        guard config.approvals != nil else {
            throw UsageError("the mappings in \(mappings) have no 'approvals' section")
        }
        return ApprovalStore(config: config)
    }
}

extension Bridge {
    /// `bridge approvals list`.
    struct Approvals: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Approval requests that paused runs wait on.",
            subcommands: [List.self]
        )
    }

    /// `bridge approve ID`.
    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Approve a pending approval request; the paused run resumes on the next `bridge exec`.",
            discussion: """
                Sets the request row's status to the approved value (and its response and responded-at \
                columns, when mapped), then notifies `bridge exec --watch` workers. The next worker that \
                looks resumes the run in the same trace and runs the approved call.

                A request past its expiry counts as rejected and cannot be approved. When the run also waits \
                on other requests of the task, it resumes once they are all decided.

                Exit status: 0 approved, 1 not a pending request of bridge's or expired, 2 bad id, flags, \
                mappings or connection.

                Reference: docs/guardrails-and-approvals.md
                """
        )
        @OptionGroup var request: DecisionArguments
        @Option(help: ArgumentHelp("A note stored in the response column.", valueName: "text"))
        var message: String?

        func run() async throws {
            try await request.decide(approve: true, message: message)
        }
    }

    /// `bridge reject ID [--message TEXT]`.
    struct Reject: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Reject a pending approval request; the model is told the call was not approved.",
            discussion: """
                Sets the request row's status to the rejected value. On resume the model receives \
                --message, or the Agents SDK's "Tool execution was not approved.".

                Exit status: 0 rejected, 1 not a pending request of bridge's or expired, 2 bad id, flags, \
                mappings or connection.

                Reference: docs/guardrails-and-approvals.md
                """
        )
        @OptionGroup var request: DecisionArguments
        @Option(
            help: ArgumentHelp("What the model is told instead of the default rejection message.", valueName: "text"))
        var message: String?

        func run() async throws {
            try await request.decide(approve: false, message: message)
        }
    }
}

/// The request `bridge approve` and `bridge reject` decide, and where it is.
struct DecisionArguments: ParsableArguments {
    @OptionGroup var options: ApprovalOptions
    @Argument(help: ArgumentHelp("The request's key (see `bridge approvals list`).", valueName: "id"))
    var id: String

    /// Approves or rejects the request, as the current OS user.
    func decide(approve: Bool, message: String?) async throws {
        try await runReportingErrors {
            let store = try options.store()
            let verb = approve ? "approve" : "reject"
            let done = approve ? "approved" : "rejected"
            let by = (ProcessInfo.processInfo.environment["USER"] ?? NSUserName()) + " (bridge \(verb))"
            let decision = try await PostgresConnection.withConnection(
                options.connection.config(applicationName: "bridge-approvals")
            ) { c in
                try await store.decide(on: c, requestKey: id, approve: approve, message: message, by: by)
            }
            let shown = TextSafety.printable(id)
            switch decision {
            case .notPending:
                FileHandle.standardError.write(
                    Data(
                        "bridge: error: \(shown) is not a pending approval request of bridge's (see `bridge approvals list`)\n"
                            .utf8))
                throw ExitCode(ExitStatus.failed.rawValue)
            case .expired:
                FileHandle.standardError.write(
                    Data(
                        "bridge: error: approval request \(shown) has expired: it counts as rejected and can no longer be decided\n"
                            .utf8))
                throw ExitCode(ExitStatus.failed.rawValue)
            case .decided(let task, let others) where others.isEmpty:
                print("\(done) \(shown); the paused run of task \(task) resumes on the next `bridge exec`")
            case .decided(let task, let others):
                let what = others.count == 1 ? "1 other request" : "\(others.count) other requests"
                print(
                    "\(done) \(shown); the run of task \(task) still waits for \(what): \(others.joined(separator: ", "))"
                )
            }
        }
    }
}

extension Bridge.Approvals {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the requests paused runs wait on (pending first), or only their ids with --ids.",
            discussion: "Exit status: 0 listed, 2 bad flags, mappings or connection."
        )
        @OptionGroup var options: ApprovalOptions
        @Flag(help: "Print only the keys of pending requests, one a line (for scripts).")
        var ids = false

        func run() async throws {
            try await runReportingErrors {
                let store = try options.store()
                let pending = store.config.approvals?.pending ?? "pending"
                let rows = try await PostgresConnection.withConnection(
                    options.connection.config(applicationName: "bridge-approvals")
                ) { c in
                    try await store.list(on: c)
                }
                if ids {
                    for r in rows where r.status == pending { print(r.requestKey) }
                    return
                }
                if rows.isEmpty {
                    print("no runs are waiting for approval")
                    return
                }
                for r in rows {
                    let args = r.arguments.count > 80 ? String(r.arguments.prefix(77)) + "..." : r.arguments
                    print(
                        "\(r.requestKey)  \(r.status)  task \(r.taskKey)  \(r.toolName)(\(args))  waiting \(Int(r.waitingSeconds))s  \(r.traceId)"
                    )
                }
            }
        }
    }
}
