/* Path spellings an attacker picks: each mode opens, execs, maps or removes one file
 * the way an evasive tool would. Usage: paths MODE [ARG]. Prints nothing; exits 0 on success. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int fail(const char *what) { perror(what); return 1; }

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    const char *arg = argc > 2 ? argv[2] : "";
    char buf[4096];
    int fd;

    if (!strcmp(mode, "open")) { /* open ARG read-only, as typed */
        fd = open(arg, O_RDONLY);
        return fd < 0 ? fail("open") : 0;
    }
    if (!strcmp(mode, "open-rw")) { /* open ARG read-write, as typed */
        fd = open(arg, O_RDWR);
        return fd < 0 ? fail("open") : 0;
    }
    if (!strcmp(mode, "chdir-open")) { /* chdir("/etc"); open("shadow") */
        if (chdir(arg) != 0) return fail("chdir");
        fd = open(argv[3], O_RDONLY);
        return fd < 0 ? fail("open") : 0;
    }
    if (!strcmp(mode, "proc-mem-dirfd")) { /* openat(dirfd_of_/proc/<pid>, "mem", O_RDWR) */
        snprintf(buf, sizeof(buf), "/proc/%s", arg);
        int d = open(buf, O_RDONLY | O_DIRECTORY);
        if (d < 0) return fail("open dir");
        fd = openat(d, "mem", O_RDWR);
        return fd < 0 ? fail("openat mem") : 0;
    }
    if (!strcmp(mode, "proc-mem-slashes")) { /* /proc//<pid>/mem */
        snprintf(buf, sizeof(buf), "/proc//%s/mem", arg);
        fd = open(buf, O_RDWR);
        return fd < 0 ? fail("open mem") : 0;
    }
    if (!strcmp(mode, "proc-mem-task")) { /* /proc/<pid>/task/<pid>/mem */
        snprintf(buf, sizeof(buf), "/proc/%s/task/%s/mem", arg, arg);
        fd = open(buf, O_RDWR);
        return fd < 0 ? fail("open mem") : 0;
    }
    if (!strcmp(mode, "chdir-exec")) { /* cd DIR && ./NAME */
        if (chdir(arg) != 0) return fail("chdir");
        char *av[] = {argv[3], NULL};
        execv(argv[3], av);
        return fail("execv");
    }
    if (!strcmp(mode, "exec")) { /* exec ARG as typed */
        char *av[] = {(char *)arg, NULL};
        execv(arg, av);
        return fail("execv");
    }
    if (!strcmp(mode, "mmap-exec")) { /* map ARG PROT_READ|PROT_EXEC */
        fd = open(arg, O_RDONLY);
        if (fd < 0) return fail("open");
        void *p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
        return p == MAP_FAILED ? fail("mmap") : 0;
    }
    if (!strcmp(mode, "memfd-mmap-exec") || !strcmp(mode, "shm-mmap-exec") || !strcmp(mode, "tmpfile-mmap-exec") ||
        !strcmp(mode, "deleted-mmap-exec")) { /* code mapped from memory-only files, no exec */
        char page[4096] = {0};
        if (!strcmp(mode, "memfd-mmap-exec"))
            fd = memfd_create("jit", 0);
        else if (!strcmp(mode, "shm-mmap-exec"))
            fd = shm_open(arg, O_CREAT | O_RDWR, 0700);
        else if (!strcmp(mode, "tmpfile-mmap-exec"))
            fd = open(arg, O_TMPFILE | O_RDWR, 0700);
        else
            fd = open(arg, O_CREAT | O_RDWR, 0700);
        if (fd < 0) return fail("create");
        if (write(fd, page, sizeof(page)) != sizeof(page)) return fail("write");
        if (!strcmp(mode, "deleted-mmap-exec")) unlink(arg);
        void *p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
        if (!strcmp(mode, "shm-mmap-exec")) shm_unlink(arg);
        return p == MAP_FAILED ? fail("mmap") : 0;
    }
    if (!strcmp(mode, "chdir-unlink")) { /* cd DIR && unlink NAME */
        if (chdir(arg) != 0) return fail("chdir");
        return unlink(argv[3]) != 0 ? fail("unlink") : 0;
    }
    if (!strcmp(mode, "chdir-rename")) { /* cd DIR && rename OLD NEW */
        if (chdir(arg) != 0) return fail("chdir");
        return rename(argv[3], argv[4]) != 0 ? fail("rename") : 0;
    }
    if (!strcmp(mode, "chdir-chmod")) { /* cd DIR && chmod +x NAME */
        if (chdir(arg) != 0) return fail("chdir");
        return chmod(argv[3], 0755) != 0 ? fail("chmod") : 0;
    }
    if (!strcmp(mode, "deep-open")) { /* mkdir -p ARG/d/d/... (argv[3] levels); open a file at the bottom */
        if (chdir(arg) != 0) return fail("chdir");
        int levels = atoi(argv[3]);
        for (int i = 0; i < levels; i++) {
            mkdir("d", 0755);
            if (chdir("d") != 0) return fail("chdir d");
        }
        fd = open("f", O_RDWR | O_CREAT, 0644);
        return fd < 0 ? fail("open f") : 0;
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
