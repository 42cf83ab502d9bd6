/* An attacker's launcher: run a program by whatever spelling, from whatever directory.
 *
 *   exe_spell run DIR PROG [ARGS...]   chdir(DIR) then execv(PROG) exactly as written
 *                                      ("./x", "//usr/./bin//dash", a symlink's name)
 *   exe_spell wx                       stage code the way a loader does: an anonymous RW
 *                                      mapping made RWX, then exit
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc >= 4 && strcmp(argv[1], "run") == 0) {
        if (chdir(argv[2]) != 0) { perror("chdir"); return 2; }
        execv(argv[3], &argv[3]);
        perror("execv");
        return 3;
    }
    if (argc == 2 && strcmp(argv[1], "wx") == 0) {
        unsigned char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) { perror("mmap"); return 4; }
        p[0] = 0xc3; /* ret */
        if (mprotect(p, 4096, PROT_READ | PROT_WRITE | PROT_EXEC) != 0) { perror("mprotect"); return 5; }
        return 0;
    }
    fprintf(stderr, "usage: exe_spell run DIR PROG [ARGS...] | exe_spell wx\n");
    return 1;
}
