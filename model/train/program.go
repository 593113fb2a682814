package train

import (
	"fmt"

	"github.com/coreattn/coreattn/attention"
	"github.com/coreattn/coreattn/attention/gpu"
	"github.com/coreattn/coreattn/wgpu"
)

// A step runs as one program per device: dispatches, and where rows cross
// adapters, sends (the source device's rows gathered into a send buffer,
// and a post that they are submitted) and receives (the send buffer copied
// into a receive buffer through the transfer path, then scattered).
// Every device's program follows the same order of stages, and a receive
// always comes after its send in that order, so the devices never wait on
// each other in a cycle. On one device a program is dispatches only: one
// command buffer.

// spanKind is what a dispatch's time counts as in the breakdown.
type spanKind int8

const (
	spanLinear    spanKind = iota // everything but core attention and the exchange
	spanAttention                 // the attention operator
	spanTransfer                  // moving rows: gathers, scatters, sums, host transfers
	spanReduce                    // the gradient sum and the optimizer
	numSpans
)

// tag says whose time a dispatch is, and in which interval between two
// attention phases of the step it runs.
type tag struct {
	rank     int32
	kind     spanKind
	interval int32
}

type opKind int8

const (
	opRun   opKind = iota // submit dispatches
	opSend                // post that a send buffer's gathers are submitted
	opRecv                // wait for the post, then copy the send buffer here
	opCheck               // ask the fault hook about an attention server
)

type op struct {
	kind  opKind
	ds    []wgpu.Dispatch
	tags  []tag
	buf   *wgpu.Buffer // send: the send buffer; recv: the receive buffer
	src   *wgpu.Buffer // recv: the send buffer, on another device
	n     int          // elements sent
	box   int          // the mailbox a send posts to and a recv waits on
	tag   tag          // send, recv, check: whose time
	fault Fault        // check
}

// program is a step's work per device.
type program struct {
	ops   [][]op
	boxes int
	// Per-step state to release once the step's work has completed.
	calls  []*gpu.Call
	arenas []*arena
	// What the exchange moves, for the log: in all, across adapters, and
	// per (interval, rank) at either end of a move between ranks.
	bytesMoved, bytesHost int64
	linkBytes             map[[2]int32]int64
}

func (p *program) release() {
	for _, c := range p.calls {
		c.Release()
	}
	for _, a := range p.arenas {
		a.release()
	}
	p.calls, p.arenas = nil, nil
}

// progBuilder records a step's program.
type progBuilder struct {
	cl       *Cluster
	a        *arrangement
	p        *program
	bs       []*builder // per device, over the step's arena
	maps     [][]uint32 // per device: the (source, destination) element pairs of the row moves
	mapCache map[mapKey]int
	patch    [][][]*wgpu.Buffer // per device: dispatches' buffer lists whose map (index 1) is set last
	interval int32
	split    bool // one tag per run op (no timestamps: host clocks time each op)
	step     int
	exchange int
	err      error
	srv      []serverMoves
}

// serverMoves are a server's staged rows grouped by the slot they live in.
type serverMoves struct {
	q     map[int]rowPairs   // by home slot: staging query rows and home rows
	k     map[int]rowPairs   // by home slot: staging key rows and home rows
	kBack []map[int]rowPairs // by round, then home slot: the key rows whose gradients go home
}

// rowPairs lists rows of a staging buffer and the matching rows of a slot.
type rowPairs struct{ stage, home []int32 }

// mapKey names a cached list of same-device row pairs.
type mapKey struct {
	server, slot int
	kind         byte // 'q': home→stage query rows, 'o': stage→home, 'k': home→stage keys, 'd': stage→home keys
	round        int
}

func newProgBuilder(cl *Cluster, a *arrangement, step int) *progBuilder {
	nd := len(cl.devs)
	pb := &progBuilder{cl: cl, a: a, step: step, p: &program{ops: make([][]op, nd), linkBytes: map[[2]int32]int64{}}, bs: make([]*builder, nd),
		maps: make([][]uint32, nd), mapCache: map[mapKey]int{}, patch: make([][][]*wgpu.Buffer, nd)}
	for i, d := range cl.devs {
		ar := &arena{dev: d.dev}
		pb.p.arenas = append(pb.p.arenas, ar)
		pb.bs[i] = &builder{k: d.k, a: ar}
		d.ws.Reset() // the previous step's launches were submitted
	}
	pb.split = cl.o.Timed && !cl.devs[0].dev.Info().Timestamps
	pb.srv = make([]serverMoves, a.slots)
	for s := range a.slots {
		sv := &a.servers[s]
		m := serverMoves{q: map[int]rowPairs{}, k: map[int]rowPairs{}, kBack: make([]map[int]rowPairs, sv.rounds)}
		for i, r := range sv.q {
			rp := m.q[int(r.slot)]
			rp.stage, rp.home = append(rp.stage, int32(i)), append(rp.home, r.row)
			m.q[int(r.slot)] = rp
		}
		for i, r := range sv.k {
			rp := m.k[int(r.slot)]
			rp.stage, rp.home = append(rp.stage, int32(i)), append(rp.home, r.row)
			m.k[int(r.slot)] = rp
			rd := sv.kRound[i]
			if m.kBack[rd] == nil {
				m.kBack[rd] = map[int]rowPairs{}
			}
			rb := m.kBack[rd][int(r.slot)]
			rb.stage, rb.home = append(rb.stage, int32(i)), append(rb.home, r.row)
			m.kBack[rd][int(r.slot)] = rb
		}
		pb.srv[s] = m
	}
	return pb
}

// dev is the device index of slot (or server) s.
func (pb *progBuilder) dev(s int) int { return pb.cl.slots[s].d.index }

// run appends dispatches to device d's program.
func (pb *progBuilder) run(d int, t tag, ds ...wgpu.Dispatch) {
	if len(ds) == 0 {
		return
	}
	ops := pb.p.ops[d]
	if n := len(ops); n > 0 && ops[n-1].kind == opRun && (!pb.split || ops[n-1].tags[0] == t) {
		last := &ops[n-1]
		last.ds = append(last.ds, ds...)
		for range ds {
			last.tags = append(last.tags, t)
		}
		return
	}
	o := op{kind: opRun, ds: ds}
	for range ds {
		o.tags = append(o.tags, t)
	}
	pb.p.ops[d] = append(ops, o)
}

// seg appends a slot's recorded segment.
func (pb *progBuilder) seg(s int, kind spanKind, g segment) {
	pb.run(pb.dev(s), tag{rank: int32(pb.cl.slots[s].rank), kind: kind, interval: pb.interval}, g.ds...)
}

// rankTag is a tag for work done for slot s's rank.
func (pb *progBuilder) rankTag(s int, kind spanKind) tag {
	return tag{rank: int32(pb.cl.slots[s].rank), kind: kind, interval: pb.interval}
}

// pairs appends row pairs of width w to device d's map and returns the
// index of the first pair.
func (pb *progBuilder) pairs(d int, src, dst []int32, w, srcOff, dstOff int) int {
	off := len(pb.maps[d]) / 2
	for i := range src {
		pb.maps[d] = append(pb.maps[d], uint32(int(src[i])*w+srcOff), uint32(int(dst[i])*w+dstOff))
	}
	return off
}

// moveDispatch records a row move on device d whose map is set when the
// program is finished.
func (pb *progBuilder) moveDispatch(d int, add bool, n, w, off int, src, dst *wgpu.Buffer) wgpu.Dispatch {
	b := pb.bs[d]
	ds := b.moveRows(add, n, w, off, src, src, dst) // the map is patched in below
	if b.err == nil {
		pb.patch[d] = append(pb.patch[d], ds.Buffers)
	}
	return ds
}

// move is one group of rows an exchange moves: rows src of buffer sb to
// rows dst of buffer db, w elements each (added with add).
type move struct {
	add            bool
	w              int
	sb, db         *wgpu.Buffer
	sdev, ddev     int
	src, dst       []int32
	key            mapKey // for same-device moves
	srcGrp, dstGrp int
	t              tag   // whose time the move is (the server's rank)
	home           int32 // the rank at the other end
	off            int   // its first element in its unit's buffers
	moved          bool  // between two ranks
	uniq, pos      []int32
}

// unique returns the distinct source rows of m in order of first
// appearance, and for each of m's rows its index among them: a key prefix
// that two of a server's segments share crosses once.
func (m *move) unique() (uniq, pos []int32) {
	if m.pos != nil {
		return m.uniq, m.pos
	}
	at := make(map[int32]int32, len(m.src))
	m.pos = make([]int32, len(m.src))
	for i, r := range m.src {
		j, ok := at[r]
		if !ok {
			j = int32(len(m.uniq))
			at[r] = j
			m.uniq = append(m.uniq, r)
		}
		m.pos[i] = j
	}
	return m.uniq, m.pos
}

// exchange is a set of moves that cross between slots and servers at one
// point of the step.
type exchange struct {
	id    int
	moves []*move
	units map[unitKey]*unit
}

// unit is an exchange's rows from one device to another, between two
// groups: one download and one upload.
type unit struct {
	key unitKey
	n   int // elements
	box int
	tb  *transferBuffers
}

func (pb *progBuilder) newExchange() *exchange {
	pb.exchange++
	return &exchange{id: pb.exchange, units: map[unitKey]*unit{}}
}

// add queues a move; rows cross between ranks when moved is set.
func (x *exchange) add(m *move) {
	if len(m.src) > 0 {
		x.moves = append(x.moves, m)
	}
}

// send records the source side of the moves of group g that cross
// adapters: gathers into each unit's send buffer, then the send.
func (pb *progBuilder) send(x *exchange, g int) {
	var order []unitKey
	for _, m := range x.moves {
		if m.srcGrp != g || m.sdev == m.ddev {
			continue
		}
		k := unitKey{exchange: x.id, src: m.sdev, dst: m.ddev, srcGroup: m.srcGrp, dstGroup: m.dstGrp}
		u := x.units[k]
		if u == nil {
			u = &unit{key: k}
			x.units[k] = u
			order = append(order, k)
		}
		uniq, _ := m.unique()
		m.off = u.n
		u.n += len(uniq) * m.w
	}
	for _, k := range order {
		u := x.units[k]
		tb, err := pb.cl.ensureBox(k, u.n)
		if err != nil {
			pb.fail(err)
			return
		}
		u.tb, u.box = tb, pb.p.boxes
		pb.p.boxes++
		var t tag
		for _, m := range x.moves {
			if m.srcGrp != g || m.sdev != k.src || m.ddev != k.dst || m.dstGrp != k.dstGroup {
				continue
			}
			uniq, _ := m.unique()
			seq := make([]int32, len(uniq))
			for i := range seq {
				seq[i] = int32(i)
			}
			off := pb.pairs(m.sdev, uniq, seq, m.w, 0, m.off)
			pb.run(m.sdev, m.t, pb.moveDispatch(m.sdev, false, len(uniq), m.w, off, m.sb, tb.send))
			t = m.t
		}
		pb.p.ops[k.src] = append(pb.p.ops[k.src], op{kind: opSend, buf: tb.send, n: u.n, box: u.box, tag: t})
		pb.p.bytesHost += int64(u.n) * 4
	}
}

// recv records the destination side of the moves into group g, in the
// exchange's order: same-device moves directly, the others from their
// unit's receive buffer after its upload.
func (pb *progBuilder) recv(x *exchange, g int) {
	received := map[unitKey]bool{}
	for _, m := range x.moves {
		if m.dstGrp != g {
			continue
		}
		if m.moved {
			uniq, _ := m.unique()
			n := int64(len(uniq)) * int64(m.w) * 4
			pb.p.bytesMoved += n
			pb.p.linkBytes[[2]int32{m.t.interval, m.t.rank}] += n
			pb.p.linkBytes[[2]int32{m.t.interval, m.home}] += n
		}
		if m.sdev == m.ddev {
			off, ok := pb.mapCache[m.key]
			if !ok {
				off = pb.pairs(m.ddev, m.src, m.dst, m.w, 0, 0)
				pb.mapCache[m.key] = off
			}
			pb.run(m.ddev, m.t, pb.moveDispatch(m.ddev, m.add, len(m.src), m.w, off, m.sb, m.db))
			continue
		}
		k := unitKey{exchange: x.id, src: m.sdev, dst: m.ddev, srcGroup: m.srcGrp, dstGroup: m.dstGrp}
		u := x.units[k]
		if u == nil || u.tb == nil {
			pb.fail(fmt.Errorf("train: internal error: exchange %d receives unit %+v before sending it", x.id, k))
			return
		}
		if !received[k] {
			received[k] = true
			pb.p.ops[m.ddev] = append(pb.p.ops[m.ddev], op{kind: opRecv, buf: u.tb.recv, src: u.tb.send, n: u.n, box: u.box, tag: m.t})
		}
		_, pos := m.unique()
		off := pb.pairs(m.ddev, pos, m.dst, m.w, m.off, 0)
		pb.run(m.ddev, m.t, pb.moveDispatch(m.ddev, m.add, len(m.src), m.w, off, u.tb.recv, m.db))
	}
}

func (pb *progBuilder) fail(err error) {
	if pb.err == nil {
		pb.err = err
	}
}

// prepare records an attention launch of the operator on slot s's device.
func (pb *progBuilder) prepare(s int, a *attention.Args, f *gpu.ForwardTensors, b *gpu.BackwardTensors) {
	if pb.err != nil {
		return
	}
	op := pb.cl.slots[s].d.op
	var call *gpu.Call
	var err error
	if f != nil {
		call, err = op.PrepareForward(a, *f)
	} else {
		call, err = op.PrepareBackward(a, *b)
	}
	if err != nil {
		pb.fail(fmt.Errorf("train: attention server %d: %w", s, err))
		return
	}
	pb.p.calls = append(pb.p.calls, call)
	pb.run(pb.dev(s), pb.rankTag(s, spanAttention), call.Dispatches()...)
}

// finish uploads the row maps and sets them in the dispatches that read
// them.
func (pb *progBuilder) finish() error {
	if pb.err != nil {
		return pb.err
	}
	for _, b := range pb.bs {
		if b.err != nil {
			return b.err
		}
	}
	for i, d := range pb.cl.devs {
		words := pb.maps[i]
		if len(words) == 0 {
			continue
		}
		if d.maps == nil || d.maps.Size() < uint64(len(words))*4 {
			d.maps.Release()
			var err error
			if d.maps, err = d.dev.NewBuffer("row maps", uint64(len(words)+len(words)/4+256)*4); err != nil {
				d.maps = nil
				return fmt.Errorf("train: %w", err)
			}
		}
		if err := wgpu.Write(d.maps, 0, words); err != nil {
			return fmt.Errorf("train: %w", err)
		}
		for _, bufs := range pb.patch[i] {
			bufs[1] = d.maps
		}
	}
	return nil
}
