//go:build !linux

package wgpu

import "time"

// pollSleep pauses between two polls of the device.
func pollSleep(d time.Duration) { time.Sleep(d) }
