// fork/exec of a child bound to its parent; see include/gp_spawn.h.
#define _GNU_SOURCE
#include "gp_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

extern char **environ;

// Makes `fd` the child's descriptor `target`. dup2 onto itself would keep FD_CLOEXEC set, so
// that case clears the flag instead.
static int place_fd(int fd, int target) {
    if (fd < 0) return 0;
    if (fd == target) {
        int flags = fcntl(fd, F_GETFD);
        return flags < 0 ? -1 : fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
    }
    return dup2(fd, target) < 0 ? -1 : 0;
}

// Writes errno to the status pipe and exits: the parent reports it as the spawn's failure.
static void child_fail(int pipe_fd) {
    int e = errno;
    ssize_t n;
    do { n = write(pipe_fd, &e, sizeof e); } while (n < 0 && errno == EINTR);
    _exit(127);
}

int gp_spawn_bound(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                   int in_fd, int out_fd, int err_fd, int death_signal) {
    // The child reports a failed exec through this pipe; a successful exec closes it (CLOEXEC).
    int status_pipe[2];
    if (pipe2(status_pipe, O_CLOEXEC) != 0) return errno;
    // Signals stay blocked across fork so no handler of the parent runs in the child before
    // the child has reset them.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
        // Between fork and exec only async-signal-safe calls: the parent may have other threads.
#ifdef __linux__
        if (death_signal > 0) {
            if (prctl(PR_SET_PDEATHSIG, death_signal) != 0) child_fail(status_pipe[1]);
            // The parent may have died before the prctl: then nothing will ever signal us.
            if (getppid() != parent) _exit(127);
        }
#else
        (void)death_signal;
        (void)parent;
#endif
        if (place_fd(in_fd, 0) != 0 || place_fd(out_fd, 1) != 0 || place_fd(err_fd, 2) != 0) child_fail(status_pipe[1]);
        // Dispositions the parent set (SIG_IGN survives exec) go back to their defaults.
        for (int s = 1; s < NSIG; s++) {
            if (s != SIGKILL && s != SIGSTOP) signal(s, SIG_DFL);
        }
        sigset_t none;
        sigemptyset(&none);
        pthread_sigmask(SIG_SETMASK, &none, NULL);
        execve(path, argv, envp ? envp : environ);
        child_fail(status_pipe[1]);
    }
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(status_pipe[1]);
    if (child < 0) {
        close(status_pipe[0]);
        return fork_errno;
    }
    int child_errno = 0;
    ssize_t n;
    do { n = read(status_pipe[0], &child_errno, sizeof child_errno); } while (n < 0 && errno == EINTR);
    close(status_pipe[0]);
    if (n == (ssize_t)sizeof child_errno) {
        // The exec failed: reap the child so no zombie is left.
        int st;
        while (waitpid(child, &st, 0) < 0 && errno == EINTR) {}
        return child_errno ? child_errno : ECHILD;
    }
    *pid = child;
    return 0;
}
