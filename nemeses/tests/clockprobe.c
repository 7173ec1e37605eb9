/*
 * A test program for the clock shim (tests/clockshim.rs compiles it with the host's cc).
 * It compares what the libc clock functions return (shifted by the shim when preloaded) with
 * the kernel's real clocks read by raw system call (which no preload can intercept).
 *
 *   clockprobe once          one line per function: "<name> <offset_ms>"
 *   clockprobe watch MS      samples CLOCK_REALTIME for MS milliseconds, prints a histogram
 *                            "<offset_ms> <count>" of the offsets seen
 *   clockprobe bench N       prints "<ns_per_call>" for N calls of clock_gettime(REALTIME)
 *   clockprobe serve         reads commands ("once", "watch MS", "bench N") from standard input
 *                            and answers each like the modes above, then a line "end"; exits at
 *                            end of input (a long-lived target for tests/vdso_clock.rs)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long long ns_of(struct timespec t) { return (long long)t.tv_sec * 1000000000LL + t.tv_nsec; }

static long long kernel_ns(clockid_t clk) {
    struct timespec t;
    syscall(SYS_clock_gettime, clk, &t);
    return ns_of(t);
}

static long long round_ms(long long ns) {
    return ns >= 0 ? (ns + 500000) / 1000000 : -((-ns + 500000) / 1000000);
}

static int run(int argc, char **argv);

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "serve")) {
        char line[256];
        while (fgets(line, sizeof line, stdin)) {
            char *args[3] = {argv[0], strtok(line, " \n"), strtok(NULL, " \n")};
            if (!args[1])
                continue;
            run(args[2] ? 3 : 2, args);
            printf("end\n");
            fflush(stdout);
        }
        return 0;
    }
    return run(argc, argv);
}

static int run(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "once";
    if (!strcmp(mode, "once")) {
        struct timespec t;
        long long real = kernel_ns(CLOCK_REALTIME);
        clock_gettime(CLOCK_REALTIME, &t);
        printf("clock_gettime %lld\n", round_ms(ns_of(t) - real));
        real = kernel_ns(CLOCK_REALTIME);
        clock_gettime(CLOCK_REALTIME_COARSE, &t);
        /* coarse clocks lag by up to a tick: round to 100 ms */
        long long coarse = round_ms(ns_of(t) - real);
        printf("realtime_coarse %lld\n", (coarse >= 0 ? coarse + 50 : coarse - 50) / 100 * 100);
        struct timeval tv;
        real = kernel_ns(CLOCK_REALTIME);
        gettimeofday(&tv, NULL);
        printf("gettimeofday %lld\n",
               round_ms((long long)tv.tv_sec * 1000000000LL + tv.tv_usec * 1000LL - real));
        real = kernel_ns(CLOCK_REALTIME);
        time_t s = time(NULL);
        /* whole seconds on both sides; equal unless a second boundary falls between the reads */
        printf("time_s %lld\n", (long long)s - real / 1000000000LL);
        real = kernel_ns(CLOCK_REALTIME);
        timespec_get(&t, TIME_UTC);
        printf("timespec_get %lld\n", round_ms(ns_of(t) - real));
        long long mono = kernel_ns(CLOCK_MONOTONIC);
        clock_gettime(CLOCK_MONOTONIC, &t);
        printf("monotonic %lld\n", round_ms(ns_of(t) - mono));
        errno = 0;
        int r = clock_gettime((clockid_t)-12345, &t);
        printf("bad_clock %d %s\n", r, errno == EINVAL ? "EINVAL" : "other");
        return 0;
    }
    if (!strcmp(mode, "watch") && argc > 2) {
        long long until = kernel_ns(CLOCK_MONOTONIC) + atoll(argv[2]) * 1000000LL;
        long long offsets[64];
        long long counts[64];
        int n = 0;
        while (kernel_ns(CLOCK_MONOTONIC) < until) {
            struct timespec t;
            long long before = kernel_ns(CLOCK_REALTIME);
            clock_gettime(CLOCK_REALTIME, &t);
            long long after = kernel_ns(CLOCK_REALTIME);
            if (after - before > 200000)
                continue; /* preempted between the reads: the sample says nothing */
            long long off = round_ms(ns_of(t) - before);
            int i;
            for (i = 0; i < n && offsets[i] != off; i++)
                ;
            if (i == n) {
                if (n == 64)
                    continue;
                offsets[n] = off;
                counts[n++] = 0;
            }
            counts[i]++;
        }
        for (int i = 0; i < n; i++)
            printf("%lld %lld\n", offsets[i], counts[i]);
        return 0;
    }
    if (!strcmp(mode, "bench") && argc > 2) {
        long long calls = atoll(argv[2]);
        struct timespec t;
        long long t0 = kernel_ns(CLOCK_MONOTONIC);
        for (long long i = 0; i < calls; i++)
            clock_gettime(CLOCK_REALTIME, &t);
        long long t1 = kernel_ns(CLOCK_MONOTONIC);
        printf("%.1f\n", (double)(t1 - t0) / (double)calls);
        return 0;
    }
    fprintf(stderr, "usage: clockprobe once | watch MS | bench N | serve\n");
    return 2;
}
