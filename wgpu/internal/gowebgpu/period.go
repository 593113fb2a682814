package gowebgpu

import (
	"math"
	"time"
)

// Where the timestamp period cannot be read (other backends or platforms,
// no matching Vulkan device; see package vulkan), Info.TimestampPeriod is
// 0 and timings assume 1 nanosecond per tick, which is right for the
// adapters the project measures on and wrong by the period's factor
// elsewhere; Timing.PeriodKnown says which.

// ticksDuration is the duration of ticks timestamp ticks of period ns each
// (1 where period is 0, unknown).
func ticksDuration(ticks uint64, period float64) time.Duration {
	if period == 0 {
		return time.Duration(ticks)
	}
	return time.Duration(math.Round(float64(ticks) * period))
}
