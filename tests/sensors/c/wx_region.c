/* W->X triggers, written as a loader would: put bytes in writable memory, make them
 * executable, run them. `wx_region MODE` prints "<region> <exec addr>" in hex-free decimal.
 * The payload is one x86-64 `ret` (0xc3), called once. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <dlfcn.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define PG 4096UL
static const unsigned char code[] = {0xc3};
static unsigned char bss_buf[4 * PG] __attribute__((aligned(4096)));

static void run(void *p) { ((void (*)(void))p)(); }
static void die(const char *w) { perror(w); exit(1); }
static void *map_rw(size_t len) {
    void *p = mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) die("mmap");
    return p;
}
static void out(void *region, void *x) { printf("%lu %lu\n", (unsigned long)region, (unsigned long)x); }

int main(int argc, char **argv) {
    const char *m = argc > 1 ? argv[1] : "exact";
    if (!strcmp(m, "exact")) { /* classic: RW map, copy, RX the whole map */
        unsigned char *p = map_rw(2 * PG);
        memcpy(p, code, sizeof code);
        if (mprotect(p, 2 * PG, PROT_READ | PROT_EXEC)) die("mprotect");
        run(p); out(p, p);
    } else if (!strcmp(m, "interior")) { /* RX of one page inside a 16-page RW region */
        unsigned char *p = map_rw(16 * PG), *x = p + 5 * PG;
        memcpy(x, code, sizeof code);
        if (mprotect(x, PG, PROT_READ | PROT_EXEC)) die("mprotect");
        run(x); out(p, x);
    } else if (!strcmp(m, "pkey")) { /* pkey_mprotect with no key: mprotect by another syscall */
        unsigned char *p = map_rw(4 * PG), *x = p + PG;
        memcpy(x, code, sizeof code);
        if (pkey_mprotect(x, PG, PROT_READ | PROT_EXEC, -1)) die("pkey_mprotect");
        run(x); out(p, x);
    } else if (!strcmp(m, "decoys")) { /* payload written, then 48 separate RW decoys, then RX */
        unsigned char *p = map_rw(PG);
        memcpy(p, code, sizeof code);
        for (int i = 0; i < 48; i++) {
            /* a read-only page next to each decoy keeps them from being one interval */
            if (mmap(0, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED) die("mmap r");
            map_rw(PG);
        }
        if (mprotect(p, PG, PROT_READ | PROT_EXEC)) die("mprotect");
        run(p); out(p, p);
    } else if (!strcmp(m, "subrange")) { /* R map, RW a sub-range, then RX it */
        unsigned char *p = mmap(0, 8 * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), *x = p + 2 * PG;
        if (p == MAP_FAILED) die("mmap");
        if (mprotect(x, 2 * PG, PROT_READ | PROT_WRITE)) die("mprotect rw");
        memcpy(x + PG, code, sizeof code);
        if (mprotect(x + PG, PG, PROT_READ | PROT_EXEC)) die("mprotect rx");
        run(x + PG); out(x, x + PG);
    } else if (!strcmp(m, "fixed")) { /* memfd mapped RW, code written, the same file mapped RX over it */
        int fd = memfd_create("", 0);
        if (fd < 0 || ftruncate(fd, PG)) die("memfd");
        unsigned char *p = mmap(0, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) die("mmap");
        memcpy(p, code, sizeof code);
        if (mmap(p, PG, PROT_READ | PROT_EXEC, MAP_SHARED | MAP_FIXED, fd, 0) != p) die("mmap fixed");
        run(p); out(p, p);
    } else if (!strcmp(m, "fixed_anon")) { /* anonymous RW, then MAP_FIXED RX anonymous over its middle */
        unsigned char *p = map_rw(8 * PG), *x = p + 3 * PG;
        if (mmap(x, PG, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != x) die("mmap fixed");
        out(p, x);
    } else if (!strcmp(m, "fresh")) { /* never-writable RX memory: not W->X */
        unsigned char *p = mmap(0, 2 * PG, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) die("mmap");
        if (mprotect(p, PG, PROT_READ | PROT_EXEC)) die("mprotect");
        out(p, p);
    } else if (!strcmp(m, "stale")) { /* RW, unmapped, same address mapped RX again: not W->X */
        unsigned char *p = map_rw(4 * PG);
        if (munmap(p, 4 * PG)) die("munmap");
        unsigned char *q = mmap(p, 4 * PG, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (q != p) die("mmap fixed");
        if (mprotect(q + PG, PG, PROT_READ | PROT_EXEC)) die("mprotect");
        out(p, q);
    } else if (!strcmp(m, "relro")) { /* RW made read-only first, then RX: not W->X */
        unsigned char *p = map_rw(2 * PG);
        if (mprotect(p, 2 * PG, PROT_READ)) die("mprotect r");
        if (mprotect(p, PG, PROT_READ | PROT_EXEC)) die("mprotect rx");
        out(p, p);
    } else if (!strcmp(m, "heap")) { /* a malloc'd buffer on the brk heap made executable */
        unsigned char *b = malloc(3 * PG), *x = (unsigned char *)(((unsigned long)b + PG - 1) & ~(PG - 1));
        memcpy(x, code, sizeof code);
        if (mprotect(x, PG, PROT_READ | PROT_EXEC)) die("mprotect");
        run(x); out(b, x);
    } else if (!strcmp(m, "bss")) { /* a static buffer of the executable */
        memcpy(bss_buf + PG, code, sizeof code);
        if (mprotect(bss_buf + PG, PG, PROT_READ | PROT_EXEC)) die("mprotect");
        run(bss_buf + PG); out(bss_buf, bss_buf + PG);
    } else if (!strcmp(m, "mremap")) { /* RW region moved, then made executable at its new address */
        unsigned char *p = map_rw(2 * PG);
        memcpy(p, code, sizeof code);
        unsigned char *q = mremap(p, 2 * PG, 64 * PG, MREMAP_MAYMOVE);
        if (q == MAP_FAILED) die("mremap");
        if (mprotect(q, PG, PROT_READ | PROT_EXEC)) die("mprotect");
        run(q); out(q, q);
    } else if (!strcmp(m, "fork")) { /* the child arms memory its parent wrote */
        unsigned char *p = map_rw(2 * PG);
        memcpy(p, code, sizeof code);
        pid_t c = fork();
        if (c == 0) {
            if (mprotect(p, PG, PROT_READ | PROT_EXEC)) die("mprotect");
            run(p);
            _exit(0);
        }
        waitpid(c, 0, 0);
        printf("%lu %lu %d\n", (unsigned long)p, (unsigned long)p, c);
    } else if (!strcmp(m, "wx")) { /* RWX at once */
        unsigned char *p = mmap(0, PG, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) die("mmap");
        memcpy(p, code, sizeof code);
        run(p); out(p, p);
    } else if (!strcmp(m, "toggle")) { /* a JIT's shape: the same region RW <-> RX many times */
        unsigned char *p = map_rw(4 * PG);
        for (int i = 0; i < 20; i++) {
            if (mprotect(p, 4 * PG, PROT_READ | PROT_WRITE)) die("rw");
            memcpy(p, code, sizeof code);
            if (mprotect(p, 4 * PG, PROT_READ | PROT_EXEC)) die("rx");
            run(p);
        }
        out(p, p);
    } else if (!strcmp(m, "dlopen")) { /* the dynamic loader mapping a system library (benign) */
        void *h = dlopen("libz.so.1", RTLD_NOW);
        if (!h) h = dlopen("libbsd.so.0", RTLD_NOW);
        if (!h) die("dlopen");
        out(h, h);
    } else {
        fprintf(stderr, "unknown mode %s\n", m);
        return 2;
    }
    if (argc > 2 && !strcmp(argv[2], "connect")) { /* the stager's next step: call out */
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(9)};
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        if (s < 0) die("socket");
        connect(s, (struct sockaddr *)&a, sizeof a); /* refused is fine: the attempt is the event */
        close(s);
    }
    fflush(stdout);
    return 0;
}
