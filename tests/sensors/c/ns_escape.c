/* Namespace triggers, written as an escape or an exploit's setup would do them.
 * `ns_escape MODE`; prints the pid whose namespaces were joined (or 0). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static void die(const char *w) { perror(w); exit(1); }

/* a child parked in new namespaces; the pipe says when they exist */
static pid_t park(int flags) {
    int p[2];
    char c;
    if (pipe(p)) die("pipe");
    pid_t pid = fork();
    if (pid == 0) {
        if (unshare(flags)) die("child unshare");
        if (write(p[1], "x", 1) != 1) _exit(1);
        pause();
        _exit(0);
    }
    if (read(p[0], &c, 1) != 1) die("read");
    return pid;
}

static void reap(pid_t pid) { kill(pid, SIGKILL); waitpid(pid, 0, 0); }

int main(int argc, char **argv) {
    const char *m = argc > 1 ? argv[1] : "setns0";
    pid_t target = 0;
    if (!strcmp(m, "setns0")) { /* nsenter style, the type left to the kernel: setns(fd, 0) */
        char path[64];
        target = park(CLONE_NEWNET);
        snprintf(path, sizeof path, "/proc/%d/ns/net", target);
        int fd = open(path, O_RDONLY);
        if (fd < 0 || setns(fd, 0)) die("setns");
        reap(target);
    } else if (!strcmp(m, "host")) { /* join the host's mount namespace (PID 1's, else our parent's) */
        int fd = open("/proc/1/ns/mnt", O_RDONLY);
        if (fd < 0) {
            char path[64];
            snprintf(path, sizeof path, "/proc/%d/ns/mnt", getppid());
            fd = open(path, O_RDONLY);
        }
        if (fd < 0 || setns(fd, 0)) die("setns host");
        target = 1;
    } else if (!strcmp(m, "pidfd")) { /* a pidfd: no /proc/PID/ns file is ever opened */
        target = park(CLONE_NEWNET | CLONE_NEWUTS);
        int pfd = (int)syscall(SYS_pidfd_open, target, 0);
        if (pfd < 0 || setns(pfd, CLONE_NEWNET | CLONE_NEWUTS)) die("setns pidfd");
        reap(target);
    } else if (!strcmp(m, "userns_mount")) { /* the setup of many kernel exploits */
        char dir[] = "/tmp/mt-nsXXXXXX";
        if (!mkdtemp(dir)) die("mkdtemp");
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS)) die("unshare");
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) die("mount private");
        if (mount("none", dir, "tmpfs", 0, NULL)) die("mount tmpfs");
        umount(dir);
        if (mount("/", dir, NULL, MS_BIND | MS_REC, NULL)) die("mount bind");
        umount2(dir, MNT_DETACH);
        rmdir(dir);
    } else if (!strcmp(m, "newapi")) { /* the same with the new mount API: no mount(2) at all */
        char dir[] = "/tmp/mt-nsXXXXXX", dir2[] = "/tmp/mt-nsXXXXXX";
        if (!mkdtemp(dir) || !mkdtemp(dir2)) die("mkdtemp");
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS)) die("unshare");
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) die("mount private");
        int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
        if (fs < 0 || fsconfig(fs, FSCONFIG_SET_STRING, "source", "mt-newapi", 0) ||
            fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0)) die("fsopen");
        int mfd = fsmount(fs, FSMOUNT_CLOEXEC, 0);
        if (mfd < 0 || move_mount(mfd, "", AT_FDCWD, dir, MOVE_MOUNT_F_EMPTY_PATH)) die("move_mount tmpfs");
        int tfd = open_tree(AT_FDCWD, "/", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
        if (tfd < 0 || move_mount(tfd, "", AT_FDCWD, dir2, MOVE_MOUNT_F_EMPTY_PATH)) die("move_mount tree");
        umount2(dir, MNT_DETACH);
        umount2(dir2, MNT_DETACH);
        rmdir(dir);
        rmdir(dir2);
    } else {
        fprintf(stderr, "unknown mode %s\n", m);
        return 2;
    }
    printf("%d\n", target);
    return 0;
}
