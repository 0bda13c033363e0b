/* getpid N: make N getpid system calls (through syscall(2), so that no
 * libc cache answers) and print the loop's time per call in nanoseconds,
 * measured with CLOCK_MONOTONIC around the loop. Built static by
 * bench/seccomp.sh and run inside containers with and without a seccomp
 * filter: the difference is the filter's cost per system call. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	struct timespec t0, t1;
	if (n <= 0) {
		fprintf(stderr, "usage: getpid N (N > 0)\n");
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < n; i++)
		syscall(SYS_getpid);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
	printf("%.2f ns/getpid over %ld calls\n", ns / n, n);
	return 0;
}
