/* Memtrail sensor: the records shared by sensor.bpf.c and the Python decoder
 * (sensors/decoder.py pins its struct.Struct formats to these; tests/ebpf/test_layout.py
 * compiles this header with gcc and compares sizes and offsets, and parses every type, flag,
 * kind and config/counter slot below against the Python side). */
#ifndef MEMTRAIL_SENSOR_H
#define MEMTRAIL_SENSOR_H

#define MT_COMM_LEN 16
#define MT_PATH_LEN 256
#define MT_ARGV_LEN 1024
#define MT_ENV_LEN 128
#define MT_EXE_NAME_LEN 64
#define MT_PREFIX_LEN 64
#define MT_CGNAME_LEN 128
#define MT_STDIO_FDS 3   /* fds 0, 1, 2 described at exec */
/* loader variables reported from the environment (index into mt_exec.env_vlen) */
#define MT_ENV_PRELOAD 0
#define MT_ENV_LIBRARY_PATH 1
#define MT_ENV_AUDIT 2
#define MT_ENV_TUNABLES 3
#define MT_ENV_VARS 4
#define MT_ENV_PRESENT 0x80000000 /* mt_exec.env_vlen: the variable was seen (its value may be empty) */

/* event types (sensors/decoder.py EVENT_TYPES) */
enum mt_type {
    MT_EXECVE = 1, MT_EXECVEAT = 2, MT_MEMFD_CREATE = 3, MT_PTRACE = 4,
    MT_PROCESS_VM_WRITEV = 5, MT_PROCESS_VM_READV = 6, MT_MPROTECT = 7, MT_MMAP = 8,
    MT_OPEN = 9, MT_OPENAT = 10, MT_OPENAT2 = 11, MT_UNSHARE = 12, MT_SETNS = 13,
    MT_CONNECT = 14, MT_FORK = 15, MT_EXIT = 16,
    MT_RENAME = 17, MT_UNLINK = 18, MT_CHMOD = 19, MT_MOUNT = 20,
};

/* hdr.flags */
#define MT_F_EXE_MEMFD   0x1
#define MT_F_EXE_DELETED 0x2
#define MT_F_ARGV_TRUNC  0x4
#define MT_F_WX          0x8
#define MT_F_W_TO_X      0x10
#define MT_F_PREV_KNOWN  0x20
/* resolved paths (built in the kernel from the dentry + mount chain, see docs/sensor.md):
 * open: s; exec: exe_path; mmap: s; unlink/rename/chmod: base (rename's new side: base2) */
#define MT_F_PATH_RESOLVED  0x40   /* the path field holds a kernel-resolved path */
#define MT_F_PATH_TRUNC     0x80   /* the walk could not finish: the field holds only its tail */
#define MT_F_PATH2_RESOLVED 0x100  /* the same for base2 */
#define MT_F_PATH2_TRUNC    0x200
/* mmap of a file with PROT_EXEC: what the mapped file is (always reported, never gated) */
#define MT_F_MAP_SHMEM      0x400  /* on tmpfs/shmem (memfd, shm_open, /dev/shm), ramfs or hugetlbfs */
#define MT_F_MAP_NLINK0     0x800  /* no link left: memfd, O_TMPFILE or deleted */
/* exec: the environment scan stopped before env_end (string or byte budget) */
#define MT_F_ENV_TRUNC      0x1000
#define MT_F_EXE_NO_INTERP  0x2000   /* exec: AT_BASE 0, no ELF interpreter (static, or ld.so run as a program) */
#define MT_F_ENV_LDTRACE    0x800000 /* exec: LD_TRACE_LOADED_OBJECTS set (ldd: ld.so lists, runs nothing) */
/* exec (exe_file) and executable mmap (the mapped file) on overlayfs */
#define MT_F_OVL_UPPER      0x4000   /* the file is in the upper (container-writable) layer: created or copied up */
#define MT_F_OVL_LOWER      0x8000   /* the file has a lower (image) layer copy */
/* W->X (mmap/mprotect): the kind of the writable region hit, in bits 16..19 (MT_WK_*) */
#define MT_F_WREG_SHIFT     16
#define MT_F_WREG_KIND_MASK 0xF0000
#define MT_F_WREG_OVERFLOW  0x100000 /* this process's region table evicted a region */
#define MT_F_NS_HOST        0x200000 /* setns: the joined namespace is one of PID 1's */
#define MT_F_MOUNT_API      0x400000 /* mount: made by the new mount API (move_mount) */

/* region kinds (MT_F_WREG_KIND_MASK on a W->X event) */
#define MT_WK_ANON 1    /* anonymous mmap */
#define MT_WK_FILE 2    /* file-backed mmap (private or shared) */
#define MT_WK_STACK 3   /* the main thread's stack (seeded at exec) */
#define MT_WK_DATA 4    /* the executable's data segment (seeded at exec) */
#define MT_WK_HEAP 5    /* the brk heap */
#define MT_WK_UNKNOWN 6 /* made writable by mprotect, its mapping not seen */

/* setns: the kind of the fd (hdr.a[3]) */
#define MT_FD_NSFS 1
#define MT_FD_PIDFD 2
#define MT_FD_OTHER 3
#define MT_PATH_DEPTH 40           /* dentries + mount crossings walked at most */
#define MT_PATH_DEPTH_POW2 64      /* array bound for the verifier */

/* config map slots */
#define MT_CFG_SELF_TGID   0
#define MT_CFG_OPEN_FILTER 1   /* 1: only opens under a configured prefix */
#define MT_CFG_MMAP_FILTER 2   /* 1: only mmap/mprotect involving PROT_EXEC */
#define MT_CFG_CONNECT_ALL 3   /* 1: every family, not only AF_INET/AF_INET6 */
#define MT_CFG_RATE_LIMIT  4   /* >0: noisy events per second per cgroup (0 = off) */
#define MT_CFG_ALLOW_COMMS 5   /* 1: the comm_allow map is not empty */
#define MT_CFG_SLOTS 8

/* counters map slots (per-CPU) */
#define MT_CNT_LOST 0
#define MT_CNT_FILTERED 1
#define MT_CNT_RATE_LIMITED 2
#define MT_CNT_SLOTS 4

struct mt_hdr {
    __u64 ts_ns;        /* bpf_ktime_get_ns: CLOCK_MONOTONIC */
    __u64 cgroup_id;    /* inode of the cgroup2 directory */
    __s64 ret;
    __u64 a[6];         /* integer arguments, per type (see decoder) */
    __u32 type;
    __u32 pid;          /* tgid */
    __u32 tid;
    __u32 ppid;
    __u32 uid;
    __u32 gid;
    __u32 flags;
    __u32 aux;          /* exec: bytes of argv copied; mprotect: previous prot */
    __u64 pstart_ns;    /* the process's (group leader's) start_boottime: with the pid, its identity */
    char comm[MT_COMM_LEN];
};

/* every type except exec: one string (path, memfd name, sockaddr, open_how...) */
struct mt_event {
    struct mt_hdr h;
    char s[MT_PATH_LEN];
};

/* a path pair. open: s = resolved path, s2 = path as typed; mount: s = source, s2 = target */
struct mt_event2 {
    struct mt_hdr h;
    char s[MT_PATH_LEN];
    char s2[MT_PATH_LEN];
};

/* unlink, rename, chmod: the typed paths (s, s2 = rename's new path) and the resolved
 * directory each is relative to (base, base2): dirfd's or the cwd's path, or the task's
 * root ("/") for an absolute typed path */
struct mt_event4 {
    struct mt_hdr h;
    char s[MT_PATH_LEN];
    char s2[MT_PATH_LEN];
    char base[MT_PATH_LEN];
    char base2[MT_PATH_LEN];
};

struct mt_exec {
    struct mt_hdr h;
    char filename[MT_PATH_LEN];
    char argv[MT_ARGV_LEN];
    char ld_preload[MT_ENV_LEN];
    char ld_library_path[MT_ENV_LEN];
    char exe_name[MT_EXE_NAME_LEN];
    char cgroup_leaf[MT_CGNAME_LEN];   /* cgroup2 directory name, e.g. libpod-<id>.scope */
    char cgroup_parent[MT_CGNAME_LEN]; /* its parent's name (nested "container" cgroups) */
    /* fds 0..2 of the new image (index 3 unused): what each one is */
    __u32 fd_rdev[4];   /* inode i_rdev (kernel dev_t: major = rdev >> 20) for char devices */
    __u16 fd_family[4]; /* sockets: sk->__sk_common.skc_family (AF_*) */
    __u8 fd_type[4];    /* (i_mode & S_IFMT) >> 12; 0 = fd not open */
    __u8 fd_open[4];    /* 1: the fd is open (fd_type 0 then means an anonymous inode) */
    char exe_path[MT_PATH_LEN]; /* mm->exe_file resolved (MT_F_PATH_RESOLVED / MT_F_PATH_TRUNC) */
    /* facts of the executed file (mm->exe_file's inode and super block); exe_mode 0 = unknown */
    __u64 exe_ino;
    __u64 exe_magic;    /* super_block.s_magic: the file system type */
    __u32 exe_dev;      /* super_block.s_dev (kernel dev_t: major = dev >> 20) */
    __u32 exe_uid;      /* owner */
    __u32 exe_nlink;
    __u16 exe_mode;     /* i_mode: type and permission bits (setuid, setgid, exec) */
    __u16 exe_pad;
    __u64 fd_ino[4];    /* fds 0..2: inode number (a pipe's is the N of pipe:[N]) */
    /* loader variables from the new environment, scanned by bytes (docs/sensor.md):
     * values (first MT_ENV_LEN-1 bytes) of the last LD_AUDIT= / GLIBC_TUNABLES= seen */
    char ld_audit[MT_ENV_LEN];
    char glibc_tunables[MT_ENV_LEN];
    /* full value lengths as scanned, by MT_ENV_* index (0 = absent; > MT_ENV_LEN-1 = truncated) */
    __u32 env_vlen[MT_ENV_VARS];
    __u32 env_size;     /* mm->env_end - mm->env_start */
    __u32 env_scanned;  /* bytes of it scanned (MT_F_ENV_TRUNC when the scan stopped short) */
    __u32 env_count;    /* environment strings scanned */
    __u32 env_pad;
};

struct mt_prefix_key {
    __u32 prefixlen;    /* bits */
    char data[MT_PREFIX_LEN];
};

#endif
