#define _GNU_SOURCE
#include "CBridgeSpawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

/* Only async-signal-safe calls run between fork and exec. */
static void child_fail(int report_fd) {
    int e = errno;
    ssize_t ignored = write(report_fd, &e, sizeof e);
    (void)ignored;
    _exit(127);
}

pid_t bridge_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd,
                   int stdin_fd, int stdout_fd, int stderr_fd, int *error_out) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) {
        *error_out = errno;
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        *error_out = errno;
        close(report[0]);
        close(report[1]);
        return -1;
    }
    if (pid == 0) {
#if defined(__linux__)
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) child_fail(report[1]);
        /* The parent may have died between fork and prctl. */
        if (getppid() != parent) _exit(127);
#endif
        setpgid(0, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        for (int s = 1; s < 32; s++) {
            if (s != SIGKILL && s != SIGSTOP) signal(s, SIG_DFL);
        }
        /* Move the report pipe out of the way of 0..2 before the dup2s. */
        int rfd = report[1];
        if (rfd <= 2) {
            rfd = fcntl(report[1], F_DUPFD_CLOEXEC, 3);
            if (rfd < 0) _exit(127);
        }
        int fds[3] = {stdin_fd, stdout_fd, stderr_fd};
        int moved[3];
        for (int i = 0; i < 3; i++) {
            moved[i] = fcntl(fds[i], F_DUPFD, 3);
            if (moved[i] < 0) child_fail(rfd);
        }
        for (int i = 0; i < 3; i++) {
            if (dup2(moved[i], i) < 0) child_fail(rfd);
        }
        long max = sysconf(_SC_OPEN_MAX);
        if (max < 0 || max > 65536) max = 65536;
        for (int fd = 3; fd < max; fd++) {
            if (fd != rfd) close(fd);
        }
        if (cwd != NULL && chdir(cwd) != 0) child_fail(rfd);
        execve(path, argv, envp);
        child_fail(rfd);
    }
    close(report[1]);
    int child_errno = 0;
    ssize_t n;
    do {
        n = read(report[0], &child_errno, sizeof child_errno);
    } while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == (ssize_t)sizeof child_errno) {
        *error_out = child_errno;
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        return -1;
    }
    return pid;
}

int bridge_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }
