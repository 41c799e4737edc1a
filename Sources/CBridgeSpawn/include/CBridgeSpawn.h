#ifndef CBRIDGE_SPAWN_H
#define CBRIDGE_SPAWN_H

#include <sys/types.h>

/// Starts `path` with `argv` and exactly the environment `envp` (both NULL-terminated), no
/// shell, in directory `cwd` (NULL: the current one), under a supervisor process, and returns
/// the supervisor's pid. The program's stdin, stdout and stderr are `stdin_fd`, `stdout_fd`
/// and `stderr_fd`; every other descriptor is closed (the supervisor keeps none of them).
///
/// The supervisor is a fork of the caller that never execs; it only makes system calls:
/// - It is a child subreaper (PR_SET_CHILD_SUBREAPER): whatever the program starts and leaves
///   behind (a grandchild that called setsid() and still holds stdout) is re-parented to it
///   instead of to init, so it can be found and stopped.
/// - When the program exits, the supervisor sends SIGTERM to every process re-parented to it
///   (while the program runs, its process group), SIGKILL after `grace_ms`, reaps them, and exits the way
///   the program did (same exit status, or the same signal). It gives up on descendants it
///   cannot stop after 3 x `grace_ms` (they are then init's).
/// - SIGTERM or SIGHUP to the supervisor stops the program: SIGTERM to its process group,
///   SIGKILL after `grace_ms` (a second signal: at once), then the same clean-up. SIGINT
///   stops it at once: SIGKILL to the program, its group and everything re-parented.
/// - It receives SIGTERM when the thread that spawned it ends (PR_SET_PDEATHSIG), including
///   the caller being killed with SIGKILL, and the program receives SIGKILL when the supervisor
///   ends: a killed bridge leaves no orphans.
/// The program leads a new process group, with an empty signal mask and default dispositions.
///
/// With `supervised` 0 there is no supervisor: the program is forked directly (its own process
/// group, default dispositions, an empty signal mask, SIGKILL when the thread that spawned it
/// ends) and whatever it leaves behind is not stopped; the tests start bridge itself so, to see
/// what bridge leaves behind.
///
/// Returns the supervisor's pid (the program's when not `supervised`), or -1 with `*error_out`
/// set to the errno of the failing step (fork, or exec of the program, reported through a
/// close-on-exec pipe).
pid_t bridge_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd,
                   int stdin_fd, int stdout_fd, int stderr_fd, int grace_ms, int supervised,
                   int *error_out);

/// pipe2(fds, O_CLOEXEC): a pipe whose ends no child inherits unless it is dup2'd.
int bridge_pipe_cloexec(int fds[2]);

/// A descriptor that becomes readable when process `pid` (a child) exits (pidfd_open), or -1
/// where the kernel has none (then poll for the exit with waitpid(WNOHANG)).
int bridge_pidfd_open(pid_t pid);

#endif
