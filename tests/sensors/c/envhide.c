/* Loader variables hidden in a large environment, as an attacker would place them.
 *
 *   envhide deep      LD_PRELOAD as the 200th variable, after ~30 KiB of filler
 *   envhide audit     LD_AUDIT (ld.so loads the auditor before the program)
 *   envhide tunables  GLIBC_TUNABLES with a very long value (CVE-2023-4911 style)
 *   envhide beyond    LD_PRELOAD after 40 KiB of filler (past the scan's byte budget)
 *   envhide tiny      LD_PRELOAD after 1000 two-byte variables (past the string budget)
 *
 * Each mode forks and the child execs /bin/true with argv[1] = the mode; the parent
 * waits and exits 0. ld.so complains about the missing libraries and runs true anyway.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAXENV 1100

static char *envp[MAXENV + 1];
static int nenv;

static void add(const char *s)
{
    if (nenv < MAXENV)
        envp[nenv++] = strdup(s);
}

static void filler(int count, int size)
{
    char *v = malloc(size + 32);
    for (int i = 0; i < count; i++) {
        int n = snprintf(v, 32, "F%03d=", i);
        memset(v + n, 'x', size - n);
        v[size] = 0;
        add(v);
    }
    free(v);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "deep";
    char *args[] = {"/bin/true", (char *)mode, NULL};

    add("PATH=/usr/bin:/bin");
    if (!strcmp(mode, "deep")) {
        filler(198, 155); /* 198 * 156 bytes = ~30 KiB before it */
        add("LD_PRELOAD=/tmp/kfacts-evil.so");
    } else if (!strcmp(mode, "audit")) {
        filler(20, 100);
        add("LD_AUDIT=/dev/shm/kfacts-audit.so");
    } else if (!strcmp(mode, "tunables")) {
        size_t n = 6000;
        char *v = malloc(n + 64);
        strcpy(v, "GLIBC_TUNABLES=glibc.malloc.mxfast=glibc.malloc.mxfast=");
        size_t l = strlen(v);
        memset(v + l, 'A', n - l);
        v[n] = 0;
        filler(5, 50);
        add(v);
    } else if (!strcmp(mode, "beyond")) {
        filler(256, 160); /* 40 KiB */
        add("LD_PRELOAD=/tmp/kfacts-beyond.so");
    } else if (!strcmp(mode, "tiny")) {
        for (int i = 0; i < 1000; i++)
            add("A=");
        add("LD_PRELOAD=/tmp/kfacts-tiny.so");
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    envp[nenv] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        execve(args[0], args, envp);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    printf("%d\n", pid);
    return 0;
}
