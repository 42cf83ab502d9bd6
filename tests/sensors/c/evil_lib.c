/* A library an attacker preloads or registers as an LD_AUDIT module: its constructor runs
 * in the victim before main; la_version makes ld.so accept it as an auditor. */
#include <unistd.h>

unsigned int la_version(unsigned int version)
{
    return version;
}

__attribute__((constructor)) static void hook(void)
{
    (void)getpid();
}
