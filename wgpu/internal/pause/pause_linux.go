// Package pause sleeps between two polls of a device: briefly.
package pause

/*
#include <time.h>
#include <sys/prctl.h>

// ca_sleep sleeps ns nanoseconds with the calling thread's timer slack cut
// from Linux's default 50 µs to 1 µs, so that a short sleep is short.
static void ca_sleep(long ns) {
	prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
	struct timespec ts = {0, ns};
	nanosleep(&ts, NULL);
}
*/
import "C"

import "time"

// Poll pauses between two polls of a device. Go's time.Sleep rounds
// a pause under a millisecond up to about one when the process is otherwise
// idle (its poller waits in whole milliseconds), which is a chunk's whole
// copy time on a fast link; a thread sleep with little timer slack wakes
// within tens of microseconds. d must be under a second.
func Poll(d time.Duration) { C.ca_sleep(C.long(d)) }
