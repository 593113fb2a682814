//go:build !linux

package pause

import "time"

// Poll pauses between two polls of a device.
func Poll(d time.Duration) { time.Sleep(d) }
