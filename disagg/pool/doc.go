// Package pool runs core attention of whole global batches on a set of
// attention servers (package disagg/server): it cuts a batch into CA-tasks,
// balances them over the servers with the CAD scheduler of package disagg,
// runs every server's share as fused varlen batches, all servers at once,
// and returns the outputs in the caller's layout. A [Pool] is an
// [attention.Runner], so code written for one device runs on a pool
// unchanged. It is pure Go: servers on a GPU (package disagg/local) or
// across a network plug in through the Server interface.
package pool

import "github.com/coreattn/coreattn/attention"

var _ attention.Runner = (*Pool)(nil)
