/*
 * fuzz_check.h - the one assertion every libFuzzer target here uses: a
 * violated invariant prints itself and aborts, which libFuzzer reports as
 * a crash with the input that caused it.  (assert() would vanish under
 * NDEBUG.)
 */
#ifndef POPNODE_FUZZ_CHECK_H
#define POPNODE_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "check failed: %s (%s:%d)\n", #cond, __FILE__,     \
				__LINE__);                                                 \
			abort();                                                           \
		}                                                                          \
	} while (0)

#endif
