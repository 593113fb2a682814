package train

import (
	"context"
	"fmt"

	"github.com/coreattn/coreattn/model"
	"github.com/coreattn/coreattn/wgpu"
)

// OptimizerState is AdamW's state: the steps taken and the moments, in
// canonical order and shapes.
type OptimizerState struct {
	Step int
	M, V [][]float32
}

// checkTensors checks tensors against the trainer's parameter shapes.
func (t *Trainer) checkTensors(what string, tensors [][]float32) error {
	ps := t.cfg.Params()
	if len(tensors) != len(ps) {
		return fmt.Errorf("train: %s: %d tensors, the model has %d", what, len(tensors), len(ps))
	}
	for i, p := range ps {
		if len(tensors[i]) != p.Size() {
			return fmt.Errorf("train: %s: %s holds %d values, want %d (shape %v)", what, p.Name, len(tensors[i]), p.Size(), p.Shape)
		}
	}
	return nil
}

// SetWeights uploads w, which must have the trainer's configuration.
func (t *Trainer) SetWeights(w *model.Weights) error {
	if w.Config != t.cfg {
		return fmt.Errorf("train: weights of %s for a trainer of %s", w.Config, t.cfg)
	}
	if err := t.checkTensors("weights", w.Tensors); err != nil {
		return err
	}
	return t.upload(t.w.params, w.Tensors)
}

// Weights downloads the parameters.
func (t *Trainer) Weights(ctx context.Context) (*model.Weights, error) {
	ts, err := t.download(ctx, t.w.params)
	if err != nil {
		return nil, err
	}
	return &model.Weights{Config: t.cfg, Tensors: ts}, nil
}

// OptimizerState downloads AdamW's moments and returns them with the step
// count.
func (t *Trainer) OptimizerState(ctx context.Context) (*OptimizerState, error) {
	m, err := t.download(ctx, t.m)
	if err != nil {
		return nil, err
	}
	v, err := t.download(ctx, t.v)
	if err != nil {
		return nil, err
	}
	return &OptimizerState{Step: t.steps, M: m, V: v}, nil
}

// SetOptimizerState uploads AdamW's state (a resumed run's).
func (t *Trainer) SetOptimizerState(s *OptimizerState) error {
	if s.Step < 0 {
		return fmt.Errorf("train: optimizer state at step %d", s.Step)
	}
	if err := t.checkTensors("adam m", s.M); err != nil {
		return err
	}
	if err := t.checkTensors("adam v", s.V); err != nil {
		return err
	}
	if err := t.upload(t.m, s.M); err != nil {
		return err
	}
	if err := t.upload(t.v, s.V); err != nil {
		return err
	}
	t.steps = s.Step
	return nil
}

func (t *Trainer) upload(b *wgpu.Buffer, tensors [][]float32) error {
	if err := wgpu.Write(b, 0, t.layout.flatten(tensors)); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	return nil
}

func (t *Trainer) download(ctx context.Context, b *wgpu.Buffer) ([][]float32, error) {
	flat := make([]float32, t.layout.total)
	if err := wgpu.Download(ctx, b, flat); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	return t.layout.split(t.cfg, flat), nil
}
