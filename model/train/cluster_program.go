package train

import (
	"github.com/coreattn/coreattn/attention/gpu"
	"github.com/coreattn/coreattn/wgpu"
)

// The step's order of stages, per layer, with nano-batches A and B
// (ping-pong; without it only A):
//
//	forward:  A linear (A's rows sent), B linear (B's rows sent),
//	          A attention (its outputs sent home), B attention, ...
//	backward: the same, with dO in, dQ back and dK/dV added where the
//	          rows live (after every server's in-place backward).
//
// A nano-batch's linear layers need its own attention outputs; an
// attention phase needs the Q, K and V of every nano-batch (a task may
// read a key prefix from anywhere), which both linear stages have made.
// So one nano-batch's transfers overlap the other's compute on the same
// device, and any assignment of tasks to servers is correct.

// group lists the slots of nano-batch k (and the servers of phase k).
func (cl *Cluster) group(k int) []int {
	N := cl.o.Ranks
	out := make([]int, N)
	for r := range N {
		out[r] = k*N + r
	}
	return out
}

// record builds the step's program up to mode m.
func (pb *progBuilder) record(m mode) {
	cl, a := pb.cl, pb.a
	L := cl.cfg.Layers
	for k := range cl.nano {
		for _, j := range cl.group(k) {
			pb.seg(j, spanLinear, cl.slots[j].r.embed)
		}
	}
	var ret *exchange
	for l := range L {
		in := pb.inputs(l, false)
		for k := range cl.nano {
			if ret != nil {
				pb.recv(ret, k)
			}
			for _, j := range cl.group(k) {
				r := cl.slots[j].r
				if l > 0 {
					pb.seg(j, spanLinear, r.fwdPost[l-1])
				}
				pb.seg(j, spanLinear, r.fwdPre[l])
			}
			// Nano-batch k's rows leave for other adapters while the next
			// nano-batch's linear layers run.
			pb.send(in, k)
		}
		ret = pb.newExchange()
		for k := range cl.nano {
			pb.recv(in, k)
			for _, s := range cl.group(k) {
				pb.check(s, l, false)
				pb.forward(s, l, ret)
			}
			pb.send(ret, k)
			pb.interval++
		}
	}
	for k := range cl.nano {
		pb.recv(ret, k)
		for _, j := range cl.group(k) {
			r := cl.slots[j].r
			pb.seg(j, spanLinear, r.fwdPost[L-1])
			pb.seg(j, spanLinear, r.head)
			if m >= modeEval {
				pb.seg(j, spanLinear, r.loss)
			}
		}
	}
	if m < modeGrad {
		return
	}
	ret = nil
	for l := L - 1; l >= 0; l-- {
		in := pb.inputs(l, true)
		for k := range cl.nano {
			if ret != nil {
				pb.recv(ret, k)
			}
			for _, j := range cl.group(k) {
				r := cl.slots[j].r
				if l == L-1 {
					pb.seg(j, spanLinear, r.bwdHead)
				} else {
					pb.seg(j, spanLinear, r.bwdPre[l+1])
				}
				pb.seg(j, spanLinear, r.bwdPost[l])
				// dK and dV rows that no in-place launch writes are sums
				// of what the servers send back: start them at zero.
				if x := a.parts[j].x; x < cl.rows {
					w := cl.cfg.KVDim()
					b := pb.bs[pb.dev(j)]
					pb.run(pb.dev(j), pb.rankTag(j, spanTransfer), b.fillZero((cl.rows-x)*w, x*w, r.dk), b.fillZero((cl.rows-x)*w, x*w, r.dv))
				}
			}
			pb.send(in, k)
		}
		ret = pb.newExchange()
		for k := range cl.nano {
			pb.recv(in, k)
			for _, s := range cl.group(k) {
				pb.check(s, l, true)
				pb.backward(s, l, ret)
			}
			// dK/dV are added where the rows live only at the receiving
			// end, in the next linear stage: after every server's in-place
			// backward has written its rows, in server order.
			pb.send(ret, k)
			pb.interval++
		}
	}
	for k := range cl.nano {
		pb.recv(ret, k)
		for _, j := range cl.group(k) {
			r := cl.slots[j].r
			pb.seg(j, spanLinear, r.bwdPre[0])
			pb.seg(j, spanLinear, r.embedBwd)
		}
	}
}

// check asks the fault hook about slot s's server before its attention.
func (pb *progBuilder) check(s, layer int, backward bool) {
	if pb.cl.o.ServerFault == nil || pb.cl.down[pb.cl.slots[s].rank] {
		return
	}
	f := Fault{Step: pb.step, Layer: layer, Rank: pb.cl.slots[s].rank, Backward: backward}
	d := pb.dev(s)
	pb.p.ops[d] = append(pb.p.ops[d], op{kind: opCheck, fault: f, tag: pb.rankTag(s, spanAttention)})
}

// inputs is the exchange that brings every server's staged query rows (Q
// forward, dO backward) and, forward, their key prefixes (K and V) from
// the slots holding them.
func (pb *progBuilder) inputs(l int, backward bool) *exchange {
	cl := pb.cl
	x := pb.newExchange()
	wq, wk := cl.cfg.QDim(), cl.cfg.KVDim()
	for s := range pb.a.slots {
		if pb.a.servers[s].staged == nil {
			continue
		}
		st := cl.stage[s]
		m := pb.srv[s]
		for h := range pb.a.slots {
			hs, r := cl.slots[h], cl.slots[h].r
			mv := func(kind byte, w int, sb, db *wgpu.Buffer, rp rowPairs) *move {
				return &move{w: w, sb: sb, db: db, sdev: pb.dev(h), ddev: pb.dev(s), src: rp.home, dst: rp.stage,
					key: mapKey{server: s, slot: h, kind: kind}, srcGrp: hs.nano, dstGrp: cl.slots[s].nano,
					t: pb.rankTag(s, spanTransfer), home: int32(hs.rank), moved: hs.rank != cl.slots[s].rank}
			}
			if rp, ok := m.q[h]; ok {
				if backward {
					x.add(mv('q', wq, r.do, st.do, rp))
				} else {
					x.add(mv('q', wq, r.q[l], st.q[l], rp))
				}
			}
			if rp, ok := m.k[h]; ok && !backward {
				x.add(mv('k', wk, r.k[l], st.k[l], rp))
				x.add(mv('k', wk, r.v[l], st.v[l], rp))
			}
		}
	}
	return x
}

// returns adds to x what server s sends home: O (forward), dQ and the
// dK/dV sums (backward), grouped by the nano-batch of the receiving slot.
func (pb *progBuilder) returns(s, l int, x *exchange, backward bool) {
	cl := pb.cl
	st, m := cl.stage[s], pb.srv[s]
	wq, wk := cl.cfg.QDim(), cl.cfg.KVDim()
	mv := func(kind byte, round, h int, add bool, w int, sb, db *wgpu.Buffer, rp rowPairs) *move {
		hs := cl.slots[h]
		return &move{add: add, w: w, sb: sb, db: db, sdev: pb.dev(s), ddev: pb.dev(h), src: rp.stage, dst: rp.home,
			key: mapKey{server: s, slot: h, kind: kind, round: round}, srcGrp: cl.slots[s].nano, dstGrp: hs.nano,
			t: pb.rankTag(s, spanTransfer), home: int32(hs.rank), moved: hs.rank != cl.slots[s].rank}
	}
	for h := range pb.a.slots {
		rp, ok := m.q[h]
		if !ok {
			continue
		}
		r := cl.slots[h].r
		if backward {
			x.add(mv('o', 0, h, false, wq, st.dq, r.dq, rp))
		} else {
			x.add(mv('o', 0, h, false, wq, st.o[l], r.o[l], rp))
		}
	}
	if !backward {
		return
	}
	for round, by := range m.kBack {
		for h := range pb.a.slots {
			rp, ok := by[h]
			if !ok {
				continue
			}
			r := cl.slots[h].r
			x.add(mv('d', round, h, true, wk, st.dk, r.dk, rp))
			x.add(mv('d', round, h, true, wk, st.dv, r.dv, rp))
		}
	}
}

// forward records server s's attention of layer l: in place, then staged,
// and queues its outputs' way home in ret.
func (pb *progBuilder) forward(s, l int, ret *exchange) {
	r := pb.cl.slots[s].r
	if a := pb.a.parts[s].inPlace; a != nil {
		pb.prepare(s, a, &gpu.ForwardTensors{Q: r.q[l], K: r.k[l], V: r.v[l], O: r.o[l], LSE: r.lse[l]}, nil)
	}
	if a := pb.a.servers[s].staged; a != nil {
		st := pb.cl.stage[s]
		pb.prepare(s, a, &gpu.ForwardTensors{Q: st.q[l], K: st.k[l], V: st.v[l], O: st.o[l], LSE: st.lse[l]}, nil)
		pb.returns(s, l, ret, false)
	}
}

// backward records server s's attention backward of layer l.
func (pb *progBuilder) backward(s, l int, ret *exchange) {
	r := pb.cl.slots[s].r
	if a := pb.a.parts[s].inPlace; a != nil {
		pb.prepare(s, a, nil, &gpu.BackwardTensors{Q: r.q[l], K: r.k[l], V: r.v[l], O: r.o[l], LSE: r.lse[l], DO: r.do, DQ: r.dq, DK: r.dk, DV: r.dv})
	}
	if a := pb.a.servers[s].staged; a != nil {
		st := pb.cl.stage[s]
		pb.prepare(s, a, nil, &gpu.BackwardTensors{Q: st.q[l], K: st.k[l], V: st.v[l], O: st.o[l], LSE: st.lse[l], DO: st.do, DQ: st.dq, DK: st.dk, DV: st.dv})
		pb.returns(s, l, ret, true)
	}
}
