package model

import (
	"errors"
	"fmt"
	"math"
)

// ErrOptimizer is wrapped by every error [Optimizer.Validate] and
// [Schedule.Validate] return.
var ErrOptimizer = errors.New("model: invalid optimizer setting")

// Optimizer is AdamW with decoupled weight decay after clipping the
// gradients by their global L2 norm, as torch.optim.AdamW after
// torch.nn.utils.clip_grad_norm_. Weight decay applies to the parameters
// whose [Param].Decay is set.
type Optimizer struct {
	Beta1       float64 `json:"beta1"`
	Beta2       float64 `json:"beta2"`
	Eps         float64 `json:"eps"`
	WeightDecay float64 `json:"weight_decay"`
	MaxGradNorm float64 `json:"max_grad_norm"` // 0 turns clipping off
}

// DefaultOptimizer is b1 0.9, b2 0.95, eps 1e-8, weight decay 0.1, clipping
// at norm 1.
func DefaultOptimizer() Optimizer {
	return Optimizer{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, MaxGradNorm: 1}
}

// Validate checks the settings; the error names the bad value.
func (o Optimizer) Validate() error {
	switch {
	case !(o.Beta1 >= 0 && o.Beta1 < 1):
		return fmt.Errorf("%w: beta1 = %v, want [0, 1)", ErrOptimizer, o.Beta1)
	case !(o.Beta2 >= 0 && o.Beta2 < 1):
		return fmt.Errorf("%w: beta2 = %v, want [0, 1)", ErrOptimizer, o.Beta2)
	case !(o.Eps > 0) || math.IsInf(o.Eps, 0):
		return fmt.Errorf("%w: eps = %v, want a finite number > 0", ErrOptimizer, o.Eps)
	case !(o.WeightDecay >= 0) || math.IsInf(o.WeightDecay, 0):
		return fmt.Errorf("%w: weight_decay = %v, want a finite number >= 0", ErrOptimizer, o.WeightDecay)
	case !(o.MaxGradNorm >= 0) || math.IsInf(o.MaxGradNorm, 0):
		return fmt.Errorf("%w: max_grad_norm = %v, want a finite number >= 0 (0: no clipping)", ErrOptimizer, o.MaxGradNorm)
	}
	return nil
}

// ClipFactor is what the gradients are multiplied by for global norm
// norm: min(1, max_norm / (norm + 1e-6)), or 1 without clipping.
func (o Optimizer) ClipFactor(norm float64) float64 {
	if o.MaxGradNorm == 0 {
		return 1
	}
	return min(1, o.MaxGradNorm/(norm+1e-6))
}

// BiasCorrections are 1 - beta1^t and 1 - beta2^t for step t (1-based).
func (o Optimizer) BiasCorrections(t int) (bc1, bc2 float64) {
	return 1 - math.Pow(o.Beta1, float64(t)), 1 - math.Pow(o.Beta2, float64(t))
}

// ReferenceStep applies step t (1-based) at learning rate lr, in float64,
// to the parameters w, updating them and the moments m and v in place
// (all in canonical order, shaped as c's parameters), from the gradients
// g. It returns the global gradient norm before clipping. The update is
// PyTorch's: p *= 1 - lr wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g²;
// p -= (lr/bc1) m / (sqrt(v)/sqrt(bc2) + eps), g clipped.
func (o Optimizer) ReferenceStep(c Config, w, g, m, v [][]float64, t int, lr float64) (norm float64) {
	for _, gi := range g {
		for _, x := range gi {
			norm += x * x
		}
	}
	norm = math.Sqrt(norm)
	clip := o.ClipFactor(norm)
	bc1, bc2 := o.BiasCorrections(t)
	step, sbc2 := lr/bc1, math.Sqrt(bc2)
	for i, p := range c.Params() {
		decay := 1.0
		if p.Decay {
			decay = 1 - lr*o.WeightDecay
		}
		for j := range w[i] {
			gj := g[i][j] * clip
			m[i][j] = o.Beta1*m[i][j] + (1-o.Beta1)*gj
			v[i][j] = o.Beta2*v[i][j] + (1-o.Beta2)*gj*gj
			w[i][j] = w[i][j]*decay - step*m[i][j]/(math.Sqrt(v[i][j])/sbc2+o.Eps)
		}
	}
	return norm
}

// Schedule is the learning rate per step: a linear warm-up (step t =
// 1..Warmup gets LR*t/Warmup), then a cosine from LR down to MinLR at step
// Steps; after Steps it stays at MinLR.
type Schedule struct {
	LR     float64 `json:"lr"`
	MinLR  float64 `json:"min_lr"`
	Warmup int     `json:"warmup"`
	Steps  int     `json:"steps"`
}

// NewSchedule returns the schedule of peak lr over steps steps with
// MinLR = lr/10 and the default warm-up: 100 steps, or 10% of the steps
// where that is fewer.
func NewSchedule(lr float64, steps int) Schedule {
	return Schedule{LR: lr, MinLR: lr / 10, Warmup: min(100, steps/10), Steps: steps}
}

// Validate checks the schedule; the error names the bad value.
func (s Schedule) Validate() error {
	switch {
	case !(s.LR > 0) || math.IsInf(s.LR, 0):
		return fmt.Errorf("%w: lr = %v, want a finite number > 0", ErrOptimizer, s.LR)
	case !(s.MinLR >= 0 && s.MinLR <= s.LR):
		return fmt.Errorf("%w: min_lr = %v, want a number in [0, lr = %v]", ErrOptimizer, s.MinLR, s.LR)
	case s.Steps < 1:
		return fmt.Errorf("%w: steps = %d, want >= 1", ErrOptimizer, s.Steps)
	case s.Warmup < 0 || s.Warmup > s.Steps:
		return fmt.Errorf("%w: warmup = %d, want a number of steps in [0, steps = %d]", ErrOptimizer, s.Warmup, s.Steps)
	}
	return nil
}

// At is the learning rate of step t (1-based).
func (s Schedule) At(t int) float64 {
	if t <= s.Warmup {
		return s.LR * float64(max(t, 1)) / float64(s.Warmup)
	}
	if t >= s.Steps {
		return s.MinLR
	}
	frac := float64(t-s.Warmup) / float64(s.Steps-s.Warmup)
	return s.MinLR + 0.5*(s.LR-s.MinLR)*(1+math.Cos(math.Pi*frac))
}

// DefaultLR is the peak learning rate for c: 3e-3 up to 1M parameters
// (tiny), 1e-3 up to 30M (small), 6e-4 above (base).
func DefaultLR(c Config) float64 {
	switch n := c.NumParams(); {
	case n <= 1e6:
		return 3e-3
	case n <= 30e6:
		return 1e-3
	}
	return 6e-4
}
