/* A custom loader (built static: no ELF interpreter) that forks first and maps its payload
 * executable in the child, as a stager that detaches before loading would.
 *   fork_map FILE
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: fork_map FILE\n"); return 1; }
    pid_t c = fork();
    if (c < 0) { perror("fork"); return 2; }
    if (c == 0) {
        int fd = open(argv[1], O_RDONLY);
        if (fd < 0) { perror("open"); _exit(3); }
        void *p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
        _exit(p == MAP_FAILED ? 4 : 0);
    }
    int st = 0;
    waitpid(c, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 5;
}
