/* getpid N [personality]: make N system calls in a loop and print the
 * loop's time per call in nanoseconds (CLOCK_MONOTONIC around the loop).
 * By default the call is getpid(2), through syscall(2) so that no libc
 * cache answers; docker's profile allows it whatever its arguments, so the
 * kernel's seccomp cache lets it by without running the filter, and what
 * the filter adds is the cost of a filtered system call's entry. With
 * "personality" it is personality(0xffffffff) (a query), which docker's
 * profile allows only for some arguments: the kernel runs the whole filter
 * for each call, and the difference is the filter's evaluation.
 * Built static by bench/seccomp.sh and run inside containers with and
 * without the filter. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	int pers = argc > 2 && strcmp(argv[2], "personality") == 0;
	struct timespec t0, t1;
	if (n <= 0 || (argc > 2 && !pers)) {
		fprintf(stderr, "usage: getpid N [personality] (N > 0)\n");
		return 2;
	}
	if (pers && syscall(SYS_personality, 0xffffffffUL) == -1) {
		perror("personality");
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (pers)
		for (long i = 0; i < n; i++)
			syscall(SYS_personality, 0xffffffffUL);
	else
		for (long i = 0; i < n; i++)
			syscall(SYS_getpid);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
	printf("%.2f ns/%s over %ld calls\n", ns / n, pers ? "personality" : "getpid", n);
	return 0;
}
