// Child processes that die with their parent.
//
// Foundation's Process puts every child in a process group of its own and cannot ask the kernel
// to signal the child when the parent dies, so killing a sweep (its process group, or the sweep
// alone with SIGKILL) left its steps running as orphans that went on writing into the sweep's
// folders. gp_spawn_bound starts a child in the caller's process group with a parent-death
// signal (Linux prctl PR_SET_PDEATHSIG), which fork/exec allows and posix_spawn does not.
#ifndef GP_SPAWN_H
#define GP_SPAWN_H

#include <sys/types.h>

/// Starts the executable `path` (no PATH search) with `argv` (NULL-terminated, argv[0] first)
/// and `envp` (NULL-terminated; NULL keeps this process's environment) as a child that stays in
/// the caller's process group, has every signal at its default disposition and an empty signal
/// mask, and is sent `death_signal` (0: none) when the calling thread ends. The parent-death
/// signal is tied to the thread that called this (Linux semantics), so call it from a thread
/// that outlives the child, as a caller that waits for the child itself does.
///
/// `in_fd`, `out_fd`, `err_fd` become the child's stdin, stdout and stderr; -1 keeps the one it
/// inherits. Returns 0 and sets `*pid`, or an errno value (the exec's own, when the executable
/// cannot be run) with no child left behind.
int gp_spawn_bound(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                   int in_fd, int out_fd, int err_fd, int death_signal);

#endif
