package attention

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// validArgs returns a valid three-segment causal GQA call that tests modify.
func validArgs() *Args {
	return &Args{
		CuSeqlensQ: []int32{0, 3, 3, 7},
		CuSeqlensK: []int32{0, 5, 9, 13},
		NumHeadsQ:  8,
		NumHeadsKV: 2,
		HeadDim:    64,
		Causal:     true,
	}
}

func TestArgsValidate(t *testing.T) {
	tests := []struct {
		name    string
		modify  func(a *Args)
		wantErr string // exact error text; "" means valid
	}{
		{"valid", func(a *Args) {}, ""},
		{"valid non-causal", func(a *Args) { a.Causal = false }, ""},
		{"valid single segment", func(a *Args) {
			a.CuSeqlensQ, a.CuSeqlensK = []int32{0, 1}, []int32{0, 1}
		}, ""},
		{"valid all empty", func(a *Args) {
			a.CuSeqlensQ, a.CuSeqlensK = []int32{0, 0}, []int32{0, 0}
		}, ""},
		{"valid empty keys non-causal", func(a *Args) {
			a.Causal = false
			a.CuSeqlensQ, a.CuSeqlensK = []int32{0, 4}, []int32{0, 0}
		}, ""},
		{"valid custom scale", func(a *Args) { a.SoftmaxScale = -0.5 }, ""},
		{"valid D bounds low", func(a *Args) { a.HeadDim = 4 }, ""},
		{"valid D bounds high", func(a *Args) { a.HeadDim = 256 }, ""},
		{"valid MHA", func(a *Args) { a.NumHeadsKV = 8 }, ""},
		{"valid MQA", func(a *Args) { a.NumHeadsKV = 1 }, ""},
		{"nil cu_seqlens_q", func(a *Args) { a.CuSeqlensQ = nil },
			"attention: cu_seqlens_q has 0 entries, want B+1 >= 2"},
		{"short cu_seqlens_k", func(a *Args) { a.CuSeqlensK = []int32{0} },
			"attention: cu_seqlens_k has 1 entries, want B+1 >= 2"},
		{"length mismatch", func(a *Args) { a.CuSeqlensK = []int32{0, 5, 9} },
			"attention: cu_seqlens_q has 4 entries but cu_seqlens_k has 3: both must hold B+1 offsets"},
		{"q not starting at 0", func(a *Args) { a.CuSeqlensQ = []int32{1, 3, 3, 7} },
			"attention: cu_seqlens_q[0] = 1, want 0"},
		{"k not starting at 0", func(a *Args) { a.CuSeqlensK = []int32{-2, 5, 9, 13} },
			"attention: cu_seqlens_k[0] = -2, want 0"},
		{"q decreasing", func(a *Args) { a.CuSeqlensQ = []int32{0, 3, 12, 10} },
			"attention: cu_seqlens_q[3] = 10 < cu_seqlens_q[2] = 12: offsets must be non-decreasing"},
		{"k decreasing", func(a *Args) { a.CuSeqlensK = []int32{0, 5, 4, 13} },
			"attention: cu_seqlens_k[2] = 4 < cu_seqlens_k[1] = 5: offsets must be non-decreasing"},
		{"zero q heads", func(a *Args) { a.NumHeadsQ = 0 },
			"attention: num_heads_q = 0, want >= 1"},
		{"negative kv heads", func(a *Args) { a.NumHeadsKV = -1 },
			"attention: num_heads_kv = -1, want >= 1"},
		{"heads not a multiple", func(a *Args) { a.NumHeadsKV = 3 },
			"attention: num_heads_q = 8 is not a multiple of num_heads_kv = 3"},
		{"more kv heads than q heads", func(a *Args) { a.NumHeadsKV = 16 },
			"attention: num_heads_q = 8 is not a multiple of num_heads_kv = 16"},
		{"D not a multiple of 4", func(a *Args) { a.HeadDim = 66 },
			"attention: head_dim = 66, want a multiple of 4 in [4, 256]"},
		{"D zero", func(a *Args) { a.HeadDim = 0 },
			"attention: head_dim = 0, want a multiple of 4 in [4, 256]"},
		{"D too large", func(a *Args) { a.HeadDim = 260 },
			"attention: head_dim = 260, want a multiple of 4 in [4, 256]"},
		{"NaN scale", func(a *Args) { a.SoftmaxScale = math.NaN() },
			"attention: softmax_scale = NaN, want a finite number (0 selects 1/sqrt(head_dim))"},
		{"Inf scale", func(a *Args) { a.SoftmaxScale = math.Inf(-1) },
			"attention: softmax_scale = -Inf, want a finite number (0 selects 1/sqrt(head_dim))"},
		{"causal q_len > k_len", func(a *Args) {
			a.CuSeqlensQ = []int32{0, 3, 3, 7, 12}
			a.CuSeqlensK = []int32{0, 5, 9, 13, 16}
		}, "attention: segment 3: causal attention needs q_len <= k_len, got q_len=5 k_len=3"},
		{"huge heads", func(a *Args) { a.NumHeadsQ, a.NumHeadsKV = 1<<40, 1 },
			"attention: num_heads_q*head_dim = 1099511627776*64 exceeds 2147483647"},
		{"q too large", func(a *Args) {
			a.CuSeqlensQ = []int32{0, 1 << 22}
			a.CuSeqlensK = []int32{0, 1 << 22}
		}, "attention: q has total_q*Hq*D = 4194304*8*64 elements, more than 2147483647"},
		{"kv too large", func(a *Args) {
			a.Causal = false
			a.CuSeqlensQ = []int32{0, 1}
			a.CuSeqlensK = []int32{0, math.MaxInt32}
		}, "attention: k and v have total_k*Hkv*D = 2147483647*2*64 elements, more than 2147483647"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := validArgs()
			tt.modify(a)
			err := a.Validate()
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Equal(t, tt.wantErr, err.Error())
		})
	}
}

func TestArgsValidateNil(t *testing.T) {
	var a *Args
	assert.EqualError(t, a.Validate(), "attention: nil Args")
	assert.Error(t, new(Args).Validate())
}

func TestArgsAccessors(t *testing.T) {
	a := validArgs() // segments (q,k): (3,5), (0,4), (4,4)
	assert.Equal(t, 3, a.Batch())
	assert.Equal(t, 7, a.TotalQ())
	assert.Equal(t, 13, a.TotalK())
	assert.Equal(t, 4, a.MaxSeqlenQ())
	assert.Equal(t, 5, a.MaxSeqlenK())
	assert.Equal(t, 1/math.Sqrt(64), a.Scale())
	a.SoftmaxScale = 0.3
	assert.Equal(t, 0.3, a.Scale())

	// Causal: segment 0 rows see 3, 4, 5 keys; segment 2 rows 1..4.
	assert.Equal(t, int64(3+4+5+1+2+3+4), a.Pairs())
	assert.Equal(t, 4*64*8*float64(22), a.FLOPs())
	a.Causal = false
	assert.Equal(t, int64(3*5+4*4), a.Pairs())

	empty := new(Args)
	assert.Equal(t, 0, empty.Batch())
	assert.Equal(t, 0, empty.TotalQ())
	assert.Equal(t, 0, empty.MaxSeqlenK())
	assert.Equal(t, int64(0), empty.Pairs())
}

// bruteForcePairs counts visible pairs by testing the mask of every pair.
func bruteForcePairs(a *Args) int64 {
	var n int64
	for b := range a.Batch() {
		ql := int(a.CuSeqlensQ[b+1] - a.CuSeqlensQ[b])
		kl := int(a.CuSeqlensK[b+1] - a.CuSeqlensK[b])
		for i := range ql {
			for j := range kl {
				if !a.Causal || j <= i+(kl-ql) {
					n++
				}
			}
		}
	}
	return n
}

func TestArgsPairsMatchesMask(t *testing.T) {
	for _, causal := range []bool{false, true} {
		for ql := range 7 {
			for kl := range 7 {
				a := &Args{CuSeqlensQ: []int32{0, 2, 2 + int32(ql)}, CuSeqlensK: []int32{0, 3, 3 + int32(kl)}, Causal: causal}
				assert.Equal(t, bruteForcePairs(a), a.Pairs(), "causal=%v q_len=%d k_len=%d", causal, ql, kl)
			}
		}
	}
}

func TestArgsCheckSizes(t *testing.T) {
	a := &Args{CuSeqlensQ: []int32{0, 3, 8}, CuSeqlensK: []int32{0, 4, 8}, NumHeadsQ: 4, NumHeadsKV: 2, HeadDim: 64}
	require.NoError(t, a.Validate())
	q, kv := 8*4*64, 8*2*64
	tests := []struct {
		name    string
		q, k, v int
		wantErr string
	}{
		{"ok", q, kv, kv, ""},
		{"q short", q - 1, kv, kv, "attention: q has 2047 elements, want total_q*Hq*D = 8*4*64 = 2048"},
		{"k short", q, 1000, kv, "attention: k has 1000 elements, want total_k*Hkv*D = 8*2*64 = 1024"},
		{"v long", q, kv, kv + 64, "attention: v has 1088 elements, want total_k*Hkv*D = 8*2*64 = 1024"},
		{"q as kv", kv, kv, kv, "attention: q has 1024 elements, want total_q*Hq*D = 8*4*64 = 2048"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := a.CheckSizes(tt.q, tt.k, tt.v)
			if tt.wantErr == "" {
				assert.NoError(t, err)
			} else {
				assert.EqualError(t, err, tt.wantErr)
			}
		})
	}
}

// fuzzOffsets decodes little-endian int32 offsets from b.
func fuzzOffsets(b []byte) []int32 {
	var cu []int32
	for len(b) >= 4 {
		cu = append(cu, int32(binary.LittleEndian.Uint32(b)))
		b = b[4:]
	}
	return cu
}

func FuzzArgsValidate(f *testing.F) {
	enc := func(cu ...int32) []byte {
		var b []byte
		for _, x := range cu {
			b = binary.LittleEndian.AppendUint32(b, uint32(x))
		}
		return b
	}
	f.Add(enc(0, 3, 3, 7), enc(0, 5, 9, 13), 8, 2, 64, 0.0, true)
	f.Add(enc(0, 2), enc(0, 0), 2, 2, 4, 0.5, false)
	f.Add(enc(0, 3, 1), enc(0, 1), 0, -1, 66, math.NaN(), true)
	f.Add([]byte{1, 2, 3}, []byte(nil), 1<<40, 3, 1<<62, math.Inf(1), false)
	f.Fuzz(func(t *testing.T, bq, bk []byte, hq, hkv, d int, scale float64, causal bool) {
		a := &Args{
			CuSeqlensQ: fuzzOffsets(bq), CuSeqlensK: fuzzOffsets(bk),
			NumHeadsQ: hq, NumHeadsKV: hkv, HeadDim: d,
			SoftmaxScale: scale, Causal: causal,
		}
		err := a.Validate()
		// None of these may panic, valid or not.
		_, _, _ = a.Batch(), a.MaxSeqlenQ(), a.MaxSeqlenK()
		_, _ = a.Pairs(), a.FLOPs()
		_ = a.CheckSizes(0, 1, -1)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		// Invariants of valid arguments.
		if a.Batch() < 1 || a.TotalQ() < 0 || a.TotalK() < 0 {
			t.Fatalf("valid args with batch %d totals %d %d", a.Batch(), a.TotalQ(), a.TotalK())
		}
		if a.MaxSeqlenQ() > a.TotalQ() || a.MaxSeqlenK() > a.TotalK() {
			t.Fatalf("max seqlen exceeds total")
		}
		if p := a.Pairs(); p < 0 || p > int64(a.TotalQ())*int64(a.TotalK()) {
			t.Fatalf("pairs %d outside [0, total_q*total_k]", p)
		}
		if s := a.Scale(); math.IsNaN(s) || math.IsInf(s, 0) || s == 0 {
			t.Fatalf("resolved scale %v", s)
		}
		if int64(a.TotalQ())*int64(a.NumHeadsQ)*int64(a.HeadDim) > MaxElements {
			t.Fatalf("q too large but valid")
		}
		nq := a.TotalQ() * a.NumHeadsQ * a.HeadDim
		nkv := a.TotalK() * a.NumHeadsKV * a.HeadDim
		if err := a.CheckSizes(nq, nkv, nkv); err != nil {
			t.Fatalf("CheckSizes rejects exact sizes: %v", err)
		}
		// Small valid calls also go through the reference.
		if nq <= 1<<12 && nkv <= 1<<12 && a.Pairs()*int64(a.NumHeadsQ) <= 1<<14 {
			q, k, v := make([]float32, nq), make([]float32, nkv), make([]float32, nkv)
			for i := range q {
				q[i] = float32(i%7) - 3
			}
			for i := range k {
				k[i], v[i] = float32(i%5)-2, float32(i%3)+1
			}
			if _, _, err := ReferenceForward(a, q, k, v); err != nil {
				t.Fatalf("reference rejects valid args: %v", err)
			}
		}
	})
}

// TestArgsScaleFloat32 checks the softmax scale where the kernels use it,
// in float32 with log2(e) folded in: a scale finite in float64 but not
// there is refused, naming the value.
func TestArgsScaleFloat32(t *testing.T) {
	tests := []struct {
		scale float64
		ok    bool
	}{
		{1e38, true},
		{-1e38, true},
		{MaxSoftmaxScale, true},
		{1e-30, true},
		{1e39, false},
		{-1e39, false},
		{math.MaxFloat32, false}, // finite in float32, but not once log2(e) is folded in
		{1e300, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.scale), func(t *testing.T) {
			a := validArgs()
			a.SoftmaxScale = tt.scale
			err := a.Validate()
			if tt.ok {
				assert.NoError(t, err)
				assert.False(t, math.IsInf(float64(float32(a.Scale()*math.Log2E)), 0))
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), fmt.Sprintf("%g", tt.scale))
		})
	}
}
