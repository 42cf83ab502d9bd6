/* An attacker's launcher: run a program by whatever spelling, from whatever directory.
 *
 *   exe_spell run DIR PROG [ARGS...]   chdir(DIR) then execv(PROG) exactly as written
 *                                      ("./x", "//usr/./bin//dash", a symlink's name)
 *   exe_spell spawn DIR PROG [ARGS...] the same in a child, then wait for it (a service
 *                                      starting a program: the launcher is the parent)
 *   exe_spell spawnas DIR PROG ARGV0 [ARGS...]
 *                                      the same with an argv[0] of the caller's choosing
 *   exe_spell wx                       stage code the way a loader does: an anonymous RW
 *                                      mapping made RWX, then exit
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc >= 4 && strcmp(argv[1], "run") == 0) {
        if (chdir(argv[2]) != 0) { perror("chdir"); return 2; }
        execv(argv[3], &argv[3]);
        perror("execv");
        return 3;
    }
    int as = argc >= 5 && strcmp(argv[1], "spawnas") == 0;
    if (as || (argc >= 4 && strcmp(argv[1], "spawn") == 0)) {
        int status = 0;
        pid_t child = fork();
        if (child < 0) { perror("fork"); return 6; }
        if (child == 0) {
            if (chdir(argv[2]) != 0) { perror("chdir"); _exit(2); }
            execv(argv[3], &argv[as ? 4 : 3]);
            perror("execv");
            _exit(3);
        }
        if (waitpid(child, &status, 0) < 0) { perror("waitpid"); return 7; }
        return WIFEXITED(status) ? WEXITSTATUS(status) : 8;
    }
    if (argc == 2 && strcmp(argv[1], "wx") == 0) {
        unsigned char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) { perror("mmap"); return 4; }
        p[0] = 0xc3; /* ret */
        if (mprotect(p, 4096, PROT_READ | PROT_WRITE | PROT_EXEC) != 0) { perror("mprotect"); return 5; }
        return 0;
    }
    fprintf(stderr, "usage: exe_spell run|spawn DIR PROG [ARGS...] | spawnas DIR PROG ARGV0 [ARGS...] | wx\n");
    return 1;
}
