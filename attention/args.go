package attention

import (
	"errors"
	"fmt"
	"math"
)

// Limits on the arguments of a call.
const (
	// MinHeadDim and MaxHeadDim bound the head dimension D, which must also
	// be a multiple of HeadDimMultiple.
	MinHeadDim      = 4
	MaxHeadDim      = 256
	HeadDimMultiple = 4

	// MaxElements bounds the number of elements of every tensor of a call
	// (and the row stride Hq*D), so that element indices fit in int32 and
	// uint32 arithmetic on the device.
	MaxElements = math.MaxInt32

	// MaxSoftmaxScale bounds |SoftmaxScale|: the kernels compute in float32
	// and fold log2(e) into the scale, which must stay finite there (1e39
	// is finite in float64 but not in float32).
	MaxSoftmaxScale = math.MaxFloat32 / math.Log2E
)

// Args describes one varlen attention call in FlashAttention's vocabulary.
// See the package documentation for the layouts and the mask.
type Args struct {
	CuSeqlensQ   []int32 // [B+1] query offsets, start at 0, non-decreasing
	CuSeqlensK   []int32 // [B+1] key/value offsets
	NumHeadsQ    int     // Hq
	NumHeadsKV   int     // Hkv; NumHeadsQ must be a multiple
	HeadDim      int     // D: multiple of 4, 4..256
	SoftmaxScale float64 // 0 selects 1/sqrt(D); otherwise |scale| <= MaxSoftmaxScale
	Causal       bool    // bottom-right aligned: query i sees key j iff j <= i + (k_len - q_len)
	DType        DType   // storage of Q, K, V, O and the gradients on the device; the zero value is Float32
}

// Validate checks every rule on the arguments and returns an error naming
// the first bad value. It never panics, whatever the fields hold.
func (a *Args) Validate() error {
	if a == nil {
		return errors.New("attention: nil Args")
	}
	if !a.DType.Valid() {
		return fmt.Errorf("attention: dtype %d: want float32, float16 or bfloat16", int(a.DType))
	}
	if err := checkOffsets("cu_seqlens_q", a.CuSeqlensQ); err != nil {
		return err
	}
	if err := checkOffsets("cu_seqlens_k", a.CuSeqlensK); err != nil {
		return err
	}
	if nq, nk := len(a.CuSeqlensQ), len(a.CuSeqlensK); nq != nk {
		return fmt.Errorf("attention: cu_seqlens_q has %d entries but cu_seqlens_k has %d: both must hold B+1 offsets", nq, nk)
	}
	if a.NumHeadsQ < 1 {
		return fmt.Errorf("attention: num_heads_q = %d, want >= 1", a.NumHeadsQ)
	}
	if a.NumHeadsKV < 1 {
		return fmt.Errorf("attention: num_heads_kv = %d, want >= 1", a.NumHeadsKV)
	}
	if a.NumHeadsQ%a.NumHeadsKV != 0 {
		return fmt.Errorf("attention: num_heads_q = %d is not a multiple of num_heads_kv = %d", a.NumHeadsQ, a.NumHeadsKV)
	}
	if d := a.HeadDim; d < MinHeadDim || d > MaxHeadDim || d%HeadDimMultiple != 0 {
		return fmt.Errorf("attention: head_dim = %d, want a multiple of %d in [%d, %d]", d, HeadDimMultiple, MinHeadDim, MaxHeadDim)
	}
	if s := a.SoftmaxScale; math.IsNaN(s) || math.IsInf(s, 0) {
		return fmt.Errorf("attention: softmax_scale = %v, want a finite number (0 selects 1/sqrt(head_dim))", s)
	}
	if s := a.SoftmaxScale; math.Abs(s) > MaxSoftmaxScale {
		return fmt.Errorf("attention: softmax_scale = %g is not finite in float32 on the device (|scale| <= %.4g)", s, MaxSoftmaxScale)
	}
	if _, ok := checkedMul(int64(a.NumHeadsQ), int64(a.HeadDim)); !ok {
		return fmt.Errorf("attention: num_heads_q*head_dim = %d*%d exceeds %d", a.NumHeadsQ, a.HeadDim, MaxElements)
	}
	tq, tk := int64(a.TotalQ()), int64(a.TotalK())
	if _, ok := checkedMul(tq, int64(a.NumHeadsQ), int64(a.HeadDim)); !ok {
		return fmt.Errorf("attention: q has total_q*Hq*D = %d*%d*%d elements, more than %d", tq, a.NumHeadsQ, a.HeadDim, MaxElements)
	}
	if _, ok := checkedMul(tk, int64(a.NumHeadsKV), int64(a.HeadDim)); !ok {
		return fmt.Errorf("attention: k and v have total_k*Hkv*D = %d*%d*%d elements, more than %d", tk, a.NumHeadsKV, a.HeadDim, MaxElements)
	}
	if a.Causal {
		for b := range a.Batch() {
			ql, kl := a.Segment(b)
			if ql > kl {
				return fmt.Errorf("attention: segment %d: causal attention needs q_len <= k_len, got q_len=%d k_len=%d", b, ql, kl)
			}
		}
	}
	return nil
}

// checkOffsets checks one cu_seqlens vector: at least two entries, starting
// at 0, non-decreasing.
func checkOffsets(name string, cu []int32) error {
	if len(cu) < 2 {
		return fmt.Errorf("attention: %s has %d entries, want B+1 >= 2", name, len(cu))
	}
	if cu[0] != 0 {
		return fmt.Errorf("attention: %s[0] = %d, want 0", name, cu[0])
	}
	for i := 1; i < len(cu); i++ {
		if cu[i] < cu[i-1] {
			return fmt.Errorf("attention: %s[%d] = %d < %s[%d] = %d: offsets must be non-decreasing", name, i, cu[i], name, i-1, cu[i-1])
		}
	}
	return nil
}

// checkedMul multiplies non-negative factors and reports whether the
// product stays within MaxElements.
func checkedMul(factors ...int64) (int64, bool) {
	p := int64(1)
	for _, f := range factors {
		if f < 0 {
			return 0, false
		}
		if f == 0 {
			return 0, true
		}
	}
	for _, f := range factors {
		if p > MaxElements/f {
			return 0, false
		}
		p *= f
	}
	return p, true
}

// Batch returns the number of segments B.
func (a *Args) Batch() int {
	return max(min(len(a.CuSeqlensQ), len(a.CuSeqlensK))-1, 0)
}

// TotalQ returns cu_seqlens_q[B], the number of query rows.
func (a *Args) TotalQ() int {
	return last(a.CuSeqlensQ)
}

// TotalK returns cu_seqlens_k[B], the number of key and value rows.
func (a *Args) TotalK() int {
	return last(a.CuSeqlensK)
}

func last(cu []int32) int {
	if len(cu) == 0 {
		return 0
	}
	return int(cu[len(cu)-1])
}

// MaxSeqlenQ returns the largest q_len over the segments.
func (a *Args) MaxSeqlenQ() int {
	return maxSeqlen(a.CuSeqlensQ)
}

// MaxSeqlenK returns the largest k_len over the segments.
func (a *Args) MaxSeqlenK() int {
	return maxSeqlen(a.CuSeqlensK)
}

func maxSeqlen(cu []int32) int {
	m := 0
	for i := 1; i < len(cu); i++ {
		m = max(m, int(cu[i])-int(cu[i-1]))
	}
	return m
}

// Segment returns q_len and k_len of segment b (0 <= b < Batch()).
func (a *Args) Segment(b int) (qLen, kLen int) {
	return int(a.CuSeqlensQ[b+1]) - int(a.CuSeqlensQ[b]), int(a.CuSeqlensK[b+1]) - int(a.CuSeqlensK[b])
}

// Scale returns the softmax scale in effect: SoftmaxScale, or 1/sqrt(D)
// when it is zero.
func (a *Args) Scale() float64 {
	if a.SoftmaxScale != 0 || a.HeadDim <= 0 {
		return a.SoftmaxScale
	}
	return 1 / math.Sqrt(float64(a.HeadDim))
}

// CheckSizes checks the lengths of the flat Q, K and V slices against the
// arguments: q must hold total_q*Hq*D elements and k and v total_k*Hkv*D.
func (a *Args) CheckSizes(q, k, v int) error {
	if err := a.checkQ("q", q); err != nil {
		return err
	}
	if err := a.checkKV("k", k); err != nil {
		return err
	}
	return a.checkKV("v", v)
}

// CheckBackwardSizes checks the lengths of the backward's host tensors: q, o
// and do hold total_q*Hq*D elements, k and v total_k*Hkv*D, lse Hq*total_q.
func (a *Args) CheckBackwardSizes(q, k, v, o, lse, do int) error {
	if err := a.CheckSizes(q, k, v); err != nil {
		return err
	}
	if err := a.checkQ("o", o); err != nil {
		return err
	}
	if err := a.checkQ("do", do); err != nil {
		return err
	}
	if want := a.NumHeadsQ * a.TotalQ(); lse != want {
		return fmt.Errorf("attention: lse has %d elements, want Hq*total_q = %d*%d = %d", lse, a.NumHeadsQ, a.TotalQ(), want)
	}
	return nil
}

// checkQ checks the length of a tensor shaped like Q.
func (a *Args) checkQ(name string, n int) error {
	return checkTensor(name, n, "total_q*Hq*D", a.TotalQ(), a.NumHeadsQ, a.HeadDim)
}

// checkKV checks the length of a tensor shaped like K.
func (a *Args) checkKV(name string, n int) error {
	return checkTensor(name, n, "total_k*Hkv*D", a.TotalK(), a.NumHeadsKV, a.HeadDim)
}

func checkTensor(name string, n int, formula string, rows, heads, dim int) error {
	want := int64(rows) * int64(heads) * int64(dim)
	if int64(n) != want {
		return fmt.Errorf("attention: %s has %d elements, want %s = %d*%d*%d = %d", name, n, formula, rows, heads, dim, want)
	}
	return nil
}

// Pairs returns the number of unmasked (query, key) pairs of one head,
// summed over the segments.
func (a *Args) Pairs() int64 {
	var n int64
	for b := range a.Batch() {
		ql, kl := a.Segment(b)
		n += segmentPairs(int64(ql), int64(kl), a.Causal)
	}
	return n
}

// segmentPairs counts the visible pairs of one segment. With the causal
// mask, row i sees min(k, max(0, i+k-q+1)) keys.
func segmentPairs(q, k int64, causal bool) int64 {
	if q <= 0 || k <= 0 {
		return 0
	}
	if !causal {
		return q * k
	}
	if q <= k {
		// Rows see k-q+1, k-q+2, ..., k keys.
		return q*(k-q) + q*(q+1)/2
	}
	// Invalid for a call, counted anyway: the first q-k rows see nothing,
	// the others 1..k keys.
	return k * (k + 1) / 2
}

// FLOPs returns the forward FLOPs of the call, 4*D*Hq*Pairs(): two matrix
// products of two FLOPs per multiply-add.
func (a *Args) FLOPs() float64 {
	return 4 * float64(a.HeadDim) * float64(a.NumHeadsQ) * float64(a.Pairs())
}
