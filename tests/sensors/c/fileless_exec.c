/* Run /bin/true without a file on disk, as droppers do:
 *
 *   fileless_exec memfd    a memfd named like a kernel thread, fexecve'd
 *   fileless_exec shm      an shm_open object, unlinked, then exec'd through /proc/self/fd
 *   fileless_exec deleted  a disk file named "memfd:x" (a decoy name), unlinked, fexecve'd
 *
 * Each mode forks; the child execs with argv[1] = the mode; the parent prints its pid.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void copy_true(int fd)
{
    char buf[65536];
    ssize_t n;
    int src = open("/bin/true", O_RDONLY);
    while ((n = read(src, buf, sizeof buf)) > 0)
        if (write(fd, buf, n) != n)
            _exit(3);
    close(src);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "memfd";
    char *args[] = {"kworker/0:1", (char *)mode, NULL};
    char *envp[] = {NULL};
    char path[128];
    int fd = -1;

    if (!strcmp(mode, "memfd")) {
        fd = memfd_create("kworker/0:1", 0);
        copy_true(fd);
    } else if (!strcmp(mode, "shm")) {
        snprintf(path, sizeof path, "/kf-%d", getpid());
        fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, 0700);
        copy_true(fd);
        close(fd);
        fd = shm_open(path, O_RDONLY, 0);
        shm_unlink(path);
    } else if (!strcmp(mode, "deleted")) {
        snprintf(path, sizeof path, "/var/tmp/memfd:x-%d", getpid());
        fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0700);
        copy_true(fd);
        close(fd);
        fd = open(path, O_RDONLY);
        unlink(path);
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    if (fd < 0) {
        perror("staging");
        return 1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        if (!strcmp(mode, "shm")) {
            snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
            execve(path, args, envp);
        } else {
            syscall(SYS_execveat, fd, "", args, envp, AT_EMPTY_PATH);
        }
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    printf("%d\n", pid);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
