#ifndef CBRIDGE_SPAWN_H
#define CBRIDGE_SPAWN_H

#include <sys/types.h>

/// Starts `path` with `argv` and exactly the environment `envp` (both NULL-terminated), no
/// shell, in directory `cwd` (NULL: the current one). The child's stdin, stdout and stderr are `stdin_fd`, `stdout_fd` and `stderr_fd`;
/// every other descriptor is closed. The child leads a new process group (so the whole group
/// can be signalled), has an empty signal mask and default signal dispositions, and receives
/// SIGKILL when the thread that spawned it ends (PR_SET_PDEATHSIG on Linux): a bridge worker
/// that is killed leaves no orphans.
///
/// Returns the child's pid, or -1 with `*error_out` set to the errno of the failing step
/// (fork, or exec in the child, reported through a close-on-exec pipe).
pid_t bridge_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd,
                   int stdin_fd, int stdout_fd, int stderr_fd, int *error_out);

/// pipe2(fds, O_CLOEXEC): a pipe whose ends no child inherits unless it is dup2'd.
int bridge_pipe_cloexec(int fds[2]);

#endif
