// Package disagg disaggregates core attention (the DistCA design, arXiv
// 2510.18121): it cuts the attention of a packed global batch into token-level
// CA-tasks, predicts their cost on each attention server and balances them
// with a communication-aware greedy scheduler. It is pure Go; the packages
// below it each have one job: disagg/sim simulates the balance at cluster
// scale, disagg/server is the attention-server contract, disagg/pool runs
// batches on a pool of servers, and disagg/local (the only one linking the
// GPU runtime) serves on the wgpu devices of this process.
//
// The vocabulary:
//
//   - A Layout is a global batch of documents packed sequentially onto trainer
//     ranks, each with a fixed token budget; a document that overflows a rank
//     continues on the next.
//   - A Chunk is the part of one document that one rank holds.
//   - A Task (CA-task) is a query range [Q.Start, Q.End) of one document with its
//     full causal key/value prefix [0, Q.End): exactly one segment of the varlen
//     kernels, with q_len = Q.End-Q.Start, k_len = Q.End and a bottom-right
//     aligned causal mask.
//   - An Item is what the scheduler moves: the still-unmoved part of a chunk, a
//     head range paired with its mirrored tail range, so that equal numbers of
//     blocks cut from its middle carry equal FLOPs.
//   - A CostModel predicts a task's time on one server (FLOPModel, or a measured
//     Profile interpolated bilinearly); Arch gives head shapes and byte sizes.
//   - A Plan says, per attention server, which tasks it runs, with their source
//     rank; Plan.Batch turns them into varlen segments.
//
// Trainer rank i and attention server i are the same device (DistCA's in-place
// attention servers), so a task's home rank is also a server index.
//
// Everything here is deterministic for a given input and safe to call from
// several goroutines on distinct values; a Plan is read-only once returned.
package disagg
