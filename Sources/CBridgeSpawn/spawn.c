#define _GNU_SOURCE
#include "CBridgeSpawn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* Everything that runs in a forked child (the supervisor and, until exec, the program) is
 * async-signal-safe: the caller is multi-threaded, so no malloc, no stdio, no locks. */

static void child_fail(int report_fd) {
    int e = errno;
    ssize_t ignored = write(report_fd, &e, sizeof e);
    (void)ignored;
    _exit(127);
}

static long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

/* The parent pid of `pid` from /proc/<pid>/stat ("pid (comm) state ppid ..."; comm may hold
 * spaces and parentheses, so the fields are read after the last ')'), or -1. */
static pid_t parent_of(const char *pid_text) {
    char path[64] = "/proc/";
    size_t n = strlen(path), len = strlen(pid_text);
    if (len > 20) return -1;
    memcpy(path + n, pid_text, len);
    memcpy(path + n + len, "/stat", 6);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buf[1024];
    ssize_t got = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (got <= 0) return -1;
    buf[got] = 0;
    char *p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ' || p[2] == 0 || p[3] != ' ') return -1;
    p += 4;
    long ppid = 0;
    if (*p < '0' || *p > '9') return -1;
    while (*p >= '0' && *p <= '9') ppid = ppid * 10 + (*p++ - '0');
    return (pid_t)ppid;
}

struct dirent64_raw {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* Sends `sig` to every child of this process (every process whose parent it is, which for a
 * subreaper includes re-parented orphans). Returns how many were signalled. */
static int signal_children(int sig) {
    pid_t self = getpid();
    int dir = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return 0;
    int count = 0;
    char buf[8192] __attribute__((aligned(8)));
    for (;;) {
        long n = syscall(SYS_getdents64, dir, buf, sizeof buf);
        if (n <= 0) break;
        for (long off = 0; off < n;) {
            struct dirent64_raw *d = (struct dirent64_raw *)(buf + off);
            off += d->d_reclen;
            if (d->d_name[0] < '1' || d->d_name[0] > '9') continue;
            long pid = 0;
            const char *c = d->d_name;
            while (*c >= '0' && *c <= '9') pid = pid * 10 + (*c++ - '0');
            if (*c != 0 || pid == self) continue;
            if (parent_of(d->d_name) == self && kill((pid_t)pid, sig) == 0) count++;
        }
    }
    close(dir);
    return count;
}

/* Exits the way the program ended: its exit status, or death by its signal (no core file). */
static void finish(int status) __attribute__((noreturn));
static void finish(int status) {
    if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL;
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, NULL);
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, sig);
    sigprocmask(SIG_UNBLOCK, &only, NULL);
    kill(getpid(), sig);
    _exit(128 + sig);
}

/* The supervisor's loop (see CBridgeSpawn.h). `waited` holds SIGCHLD, SIGTERM, SIGINT and
 * SIGHUP, blocked and taken with sigtimedwait. */
static void supervise(pid_t program, int grace_ms, const sigset_t *waited) __attribute__((noreturn));
static void supervise(pid_t program, int grace_ms, const sigset_t *waited) {
    int status = 0, exited = 0, stopping = 0, cleaning = 0, urgent = 0;
    long stop_kill_at = LONG_MAX, clean_kill_at = LONG_MAX, give_up_at = LONG_MAX;
    for (;;) {
        for (;;) {
            int st;
            pid_t p = waitpid(-1, &st, WNOHANG);
            if (p > 0) {
                if (p == program) {
                    status = st;
                    exited = 1;
                }
                continue;
            }
            if (p < 0 && errno == EINTR) continue;
            if (p < 0 && errno == ECHILD && exited) finish(status);
            break;
        }
        long now = now_ms();
        if (!exited && now >= stop_kill_at) {
            kill(-program, SIGKILL);
            kill(program, SIGKILL);
            stop_kill_at = LONG_MAX;
        }
        if (exited) {
            /* The program is reaped: its pid, and so its process group id, may already be
             * another process's. What it left is found as our children instead: every
             * descendant is re-parented to us once its parent is gone. */
            if (!cleaning) {
                cleaning = 1;
                signal_children(SIGTERM);
                clean_kill_at = urgent ? now : now + grace_ms;
                give_up_at = now + 3L * grace_ms;
            } else if (now >= clean_kill_at) {
                signal_children(SIGKILL);
            }
            if (now >= give_up_at) finish(status);
        }
        long wait_ms = -1;
        if (exited) {
            wait_ms = 50; /* re-parented processes appear without a signal to us */
        } else if (stop_kill_at != LONG_MAX) {
            wait_ms = stop_kill_at > now ? stop_kill_at - now : 0;
        }
        siginfo_t info;
        int sig;
        if (wait_ms < 0) {
            sig = sigwaitinfo(waited, &info);
        } else {
            struct timespec ts = {wait_ms / 1000, (wait_ms % 1000) * 1000000L};
            sig = sigtimedwait(waited, &info, &ts);
        }
        if (sig == SIGINT) {
            /* Stop at once. */
            stopping = 1;
            urgent = 1;
            stop_kill_at = 0;
            clean_kill_at = 0;
        } else if (sig == SIGTERM || sig == SIGHUP) {
            if (!exited && !stopping) {
                stopping = 1;
                kill(-program, SIGTERM);
                kill(program, SIGTERM);
                stop_kill_at = now_ms() + grace_ms;
            } else if (!exited) {
                stop_kill_at = 0;
            } else {
                clean_kill_at = 0;
            }
        }
    }
}

/* Default dispositions for every signal (bridge ignores SIGTERM and SIGINT, and an ignored
 * signal stays ignored across exec). */
static void reset_dispositions(void) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < 32; s++) {
        if (s != SIGKILL && s != SIGSTOP) sigaction(s, &dfl, NULL);
    }
}

/* In a forked child: `stdin_fd`, `stdout_fd` and `stderr_fd` become 0, 1 and 2, and every other
 * descriptor but `*keep` (moved out of 0..2 first) is closed. */
static void install_stdio(int stdin_fd, int stdout_fd, int stderr_fd, int *keep) {
    if (*keep <= 2) {
        int moved = fcntl(*keep, F_DUPFD_CLOEXEC, 3);
        if (moved < 0) _exit(127);
        *keep = moved;
    }
    int fds[3] = {stdin_fd, stdout_fd, stderr_fd};
    int moved[3];
    for (int i = 0; i < 3; i++) {
        moved[i] = fcntl(fds[i], F_DUPFD, 3);
        if (moved[i] < 0) child_fail(*keep);
    }
    for (int i = 0; i < 3; i++) {
        if (dup2(moved[i], i) < 0) child_fail(*keep);
    }
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536) max = 65536;
    for (int fd = 3; fd < max; fd++) {
        if (fd != *keep) close(fd);
    }
}

/* The program's side of its fork: it dies with `parent` (SIGKILL), leads a new process group,
 * has no blocked signal, and execs. */
static void exec_program(const char *path, char *const argv[], char *const envp[], const char *cwd,
                         pid_t parent, int report_fd) __attribute__((noreturn));
static void exec_program(const char *path, char *const argv[], char *const envp[], const char *cwd,
                         pid_t parent, int report_fd) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) child_fail(report_fd);
    if (getppid() != parent) _exit(127);
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (cwd != NULL && chdir(cwd) != 0) child_fail(report_fd);
    execve(path, argv, envp);
    child_fail(report_fd);
}

/* The supervisor's side of the first fork (see CBridgeSpawn.h): forks the program and watches it. */
static void start_supervisor(const char *path, char *const argv[], char *const envp[], const char *cwd,
                             int stdin_fd, int stdout_fd, int stderr_fd, int grace_ms, pid_t parent,
                             int rfd) __attribute__((noreturn));
static void start_supervisor(const char *path, char *const argv[], char *const envp[], const char *cwd,
                             int stdin_fd, int stdout_fd, int stderr_fd, int grace_ms, pid_t parent,
                             int rfd) {
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) child_fail(rfd);
    /* The parent may have died between fork and prctl. */
    if (getppid() != parent) _exit(127);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) child_fail(rfd);
    /* What ps shows (a fork keeps the name of the thread that forked it). */
    prctl(PR_SET_NAME, "bridge-reaper", 0, 0, 0);
    setpgid(0, 0);
    /* Default dispositions (an ignored signal would never reach sigtimedwait, and an ignored
     * SIGCHLD would reap for us), and the signals the loop waits for blocked. */
    reset_dispositions();
    sigset_t waited;
    sigemptyset(&waited);
    sigaddset(&waited, SIGCHLD);
    sigaddset(&waited, SIGTERM);
    sigaddset(&waited, SIGINT);
    sigaddset(&waited, SIGHUP);
    sigprocmask(SIG_SETMASK, &waited, NULL);
    install_stdio(stdin_fd, stdout_fd, stderr_fd, &rfd);
    pid_t supervisor = getpid();
    pid_t program = fork();
    if (program < 0) child_fail(rfd);
    if (program == 0) exec_program(path, argv, envp, cwd, supervisor, rfd);
    /* The supervisor holds none of the program's descriptors: their end of file is the
     * program's (and its descendants') alone. */
    setpgid(program, program);
    close(0);
    close(1);
    close(2);
    close(rfd);
    supervise(program, grace_ms, &waited);
}

pid_t bridge_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd,
                   int stdin_fd, int stdout_fd, int stderr_fd, int grace_ms, int supervised,
                   int *error_out) {
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
        int rfd = report[1];
        if (supervised) {
            start_supervisor(path, argv, envp, cwd, stdin_fd, stdout_fd, stderr_fd, grace_ms, parent, rfd);
        }
        reset_dispositions();
        install_stdio(stdin_fd, stdout_fd, stderr_fd, &rfd);
        exec_program(path, argv, envp, cwd, parent, rfd);
    }
    if (!supervised) setpgid(pid, pid);
    close(report[1]);
    int child_errno = 0;
    ssize_t n;
    do {
        n = read(report[0], &child_errno, sizeof child_errno);
    } while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == (ssize_t)sizeof child_errno) {
        *error_out = child_errno;
        /* A supervisor exits once the failed program is reaped. */
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        return -1;
    }
    return pid;
}

int bridge_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int bridge_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }
