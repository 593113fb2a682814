package model

import "math"

// The float64 building blocks of the reference. Tensors are flat row-major
// slices; each function documents its shapes. The device kernels of
// package model/train are tested against these, and [Reference] is built
// from them (and checked by finite differences).

// RMSNormForward returns y = x / sqrt(mean(x²) + eps) * w for every row of
// x [rows, d], and each row's reciprocal RMS, rstd [rows].
func RMSNormForward(x, w []float64, d int, eps float64) (y, rstd []float64) {
	rows := len(x) / d
	y, rstd = make([]float64, len(x)), make([]float64, rows)
	for r := range rows {
		xr := x[r*d : (r+1)*d]
		ms := 0.0
		for _, v := range xr {
			ms += v * v
		}
		s := 1 / math.Sqrt(ms/float64(d)+eps)
		rstd[r] = s
		for i, v := range xr {
			y[r*d+i] = v * s * w[i]
		}
	}
	return y, rstd
}

// RMSNormBackward returns dx [rows, d] and dw [d] for upstream dy, from the
// forward's input x and rstd: with g = dy*w,
// dx = rstd g - rstd³ x mean(g x) and dw = Σ_rows dy x rstd.
func RMSNormBackward(x, w, rstd, dy []float64, d int) (dx, dw []float64) {
	dx, dw = make([]float64, len(x)), make([]float64, d)
	for r := range rstd {
		xr, dyr, s := x[r*d:(r+1)*d], dy[r*d:(r+1)*d], rstd[r]
		dot := 0.0
		for i := range d {
			dot += dyr[i] * w[i] * xr[i]
			dw[i] += dyr[i] * xr[i] * s
		}
		c := s * s * s * dot / float64(d)
		for i := range d {
			dx[r*d+i] = s*dyr[i]*w[i] - c*xr[i]
		}
	}
	return dx, dw
}

// RopeFreq is f_i = theta^(-2i/dh), the rotation frequency of pair i.
func RopeFreq(i, dh int, theta float64) float64 {
	return math.Pow(theta, -2*float64(i)/float64(dh))
}

// RopeForward rotates each head of x [rows, heads*dh] by its row's
// position, rotate-half convention: for pair i < dh/2, with
// a = pos*f_i, y[i] = x[i] cos a - x[i+dh/2] sin a and
// y[i+dh/2] = x[i+dh/2] cos a + x[i] sin a.
func RopeForward(x []float64, pos []int32, heads, dh int, theta float64) []float64 {
	return rope(x, pos, heads, dh, theta, 1)
}

// RopeBackward is the transpose of [RopeForward] (the rotation by -a),
// applied to the upstream gradient dy.
func RopeBackward(dy []float64, pos []int32, heads, dh int, theta float64) []float64 {
	return rope(dy, pos, heads, dh, theta, -1)
}

func rope(x []float64, pos []int32, heads, dh int, theta, sign float64) []float64 {
	y := make([]float64, len(x))
	half, width := dh/2, heads*dh
	for r, p := range pos {
		for i := range half {
			s, c := math.Sincos(float64(p) * RopeFreq(i, dh, theta))
			s *= sign
			for h := range heads {
				o := r*width + h*dh + i
				a, b := x[o], x[o+half]
				y[o] = a*c - b*s
				y[o+half] = b*c + a*s
			}
		}
	}
	return y
}

// Silu is z sigmoid(z).
func Silu(z float64) float64 { return z / (1 + math.Exp(-z)) }

// SwiGLUForward returns silu(gate) * up, element by element.
func SwiGLUForward(gate, up []float64) []float64 {
	a := make([]float64, len(gate))
	for i, g := range gate {
		a[i] = Silu(g) * up[i]
	}
	return a
}

// SwiGLUBackward returns the gradients of gate and up for upstream da:
// dgate = da up silu'(gate), dup = da silu(gate), with
// silu'(z) = σ(z)(1 + z(1-σ(z))).
func SwiGLUBackward(gate, up, da []float64) (dgate, dup []float64) {
	dgate, dup = make([]float64, len(gate)), make([]float64, len(gate))
	for i, g := range gate {
		sg := 1 / (1 + math.Exp(-g))
		dgate[i] = da[i] * up[i] * sg * (1 + g*(1-sg))
		dup[i] = da[i] * g * sg
	}
	return dgate, dup
}

// CrossEntropy returns the mean over the rows with a target (targets[r] >=
// 0) of logsumexp(logits[r]) - logits[r][targets[r]], for logits
// [rows, vocab], and the gradient of that mean with respect to the logits
// (softmax minus one-hot, divided by the number of targets; zero on rows
// without one). With no target at all the loss is 0.
func CrossEntropy(logits []float64, targets []int32, vocab int) (loss float64, dlogits []float64) {
	dlogits = make([]float64, len(logits))
	n := 0
	for _, t := range targets {
		if t >= 0 {
			n++
		}
	}
	if n == 0 {
		return 0, dlogits
	}
	for r, t := range targets {
		if t < 0 {
			continue
		}
		z := logits[r*vocab : (r+1)*vocab]
		m := math.Inf(-1)
		for _, v := range z {
			m = max(m, v)
		}
		sum := 0.0
		for _, v := range z {
			sum += math.Exp(v - m)
		}
		lse := m + math.Log(sum)
		loss += lse - z[t]
		for i, v := range z {
			dlogits[r*vocab+i] = math.Exp(v-lse) / float64(n)
		}
		dlogits[r*vocab+int(t)] -= 1 / float64(n)
	}
	return loss / float64(n), dlogits
}

// AttentionForward is causal varlen attention with grouped-query heads:
// q [rows, hq*dh], k and v [rows, hkv*dh], documents at cu, scale
// 1/sqrt(dh), query head h reading KV head h/(hq/hkv). It returns
// o [rows, hq*dh].
func AttentionForward(q, k, v []float64, cu []int32, hq, hkv, dh int) []float64 {
	o := make([]float64, len(q))
	eachAttentionRow(q, k, cu, hq, hkv, dh, func(r, h, g, s int, p []float64) {
		orow := o[r*hq*dh+h*dh : r*hq*dh+(h+1)*dh]
		for j, pj := range p {
			vrow := v[(s+j)*hkv*dh+g*dh:]
			for i := range orow {
				orow[i] += pj * vrow[i]
			}
		}
	})
	return o
}

// AttentionBackward returns dq, dk and dv of [AttentionForward] for
// upstream do [rows, hq*dh].
func AttentionBackward(q, k, v, do []float64, cu []int32, hq, hkv, dh int) (dq, dk, dv []float64) {
	dq, dk, dv = make([]float64, len(q)), make([]float64, len(k)), make([]float64, len(v))
	scale := 1 / math.Sqrt(float64(dh))
	dp := []float64{}
	eachAttentionRow(q, k, cu, hq, hkv, dh, func(r, h, g, s int, p []float64) {
		qo, kvw := r*hq*dh+h*dh, hkv*dh
		dorow := do[qo : qo+dh]
		dp = dp[:0]
		sum := 0.0
		for j, pj := range p {
			vo := (s+j)*kvw + g*dh
			x := dotf(dorow, v[vo:vo+dh])
			dp = append(dp, x)
			sum += pj * x
			for i := range dh {
				dv[vo+i] += pj * dorow[i]
			}
		}
		for j, pj := range p {
			ds := pj * (dp[j] - sum) * scale
			ko := (s+j)*kvw + g*dh
			for i := range dh {
				dq[qo+i] += ds * k[ko+i]
				dk[ko+i] += ds * q[qo+i]
			}
		}
	})
	return dq, dk, dv
}

// eachAttentionRow calls fn for every row r and query head h with the
// row's KV head g, its document's first row s and its softmax
// probabilities p over keys s..r.
func eachAttentionRow(q, k []float64, cu []int32, hq, hkv, dh int, fn func(r, h, g, s int, p []float64)) {
	scale := 1 / math.Sqrt(float64(dh))
	var p []float64
	for d := 0; d+1 < len(cu); d++ {
		s, e := int(cu[d]), int(cu[d+1])
		for r := s; r < e; r++ {
			for h := range hq {
				g := h / (hq / hkv)
				qrow := q[r*hq*dh+h*dh : r*hq*dh+(h+1)*dh]
				p = p[:0]
				m := math.Inf(-1)
				for j := s; j <= r; j++ {
					x := dotf(qrow, k[j*hkv*dh+g*dh:j*hkv*dh+(g+1)*dh]) * scale
					p = append(p, x)
					m = max(m, x)
				}
				sum := 0.0
				for j := range p {
					p[j] = math.Exp(p[j] - m)
					sum += p[j]
				}
				for j := range p {
					p[j] /= sum
				}
				fn(r, h, g, s, p)
			}
		}
	}
}

func dotf(x, y []float64) float64 {
	s := 0.0
	for i, v := range x {
		s += v * y[i]
	}
	return s
}

// MatMulT returns y = x wᵀ for x [rows, in] and w [out, in] (a linear
// layer in PyTorch's convention): y [rows, out].
func MatMulT(x, w []float64, in, out int) []float64 {
	rows := len(x) / in
	y := make([]float64, rows*out)
	for r := range rows {
		xr := x[r*in : (r+1)*in]
		for o := range out {
			y[r*out+o] = dotf(xr, w[o*in:(o+1)*in])
		}
	}
	return y
}

// MatMulTBackward returns dx = dy w [rows, in] and dw = dyᵀ x [out, in] of
// [MatMulT] for upstream dy [rows, out].
func MatMulTBackward(x, w, dy []float64, in, out int) (dx, dw []float64) {
	rows := len(x) / in
	dx, dw = make([]float64, len(x)), make([]float64, len(w))
	for r := range rows {
		xr, dxr := x[r*in:(r+1)*in], dx[r*in:(r+1)*in]
		for o := range out {
			g := dy[r*out+o]
			if g == 0 {
				continue
			}
			wo, dwo := w[o*in:(o+1)*in], dw[o*in:(o+1)*in]
			for i := range in {
				dxr[i] += g * wo[i]
				dwo[i] += g * xr[i]
			}
		}
	}
	return dx, dw
}
