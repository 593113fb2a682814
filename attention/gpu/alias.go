package gpu

import (
	"errors"
	"fmt"

	"github.com/coreattn/coreattn/wgpu"
)

// ErrAliased is returned (wrapped) when an output tensor of a call shares
// its buffer with another output or with an input: the kernels would read
// what they overwrite, or outputs would overwrite each other. Inputs may
// share buffers.
var ErrAliased = errors.New("attention: an output aliases another tensor")

// namedBuffer is a tensor of a call, named for errors.
type namedBuffer struct {
	name string
	b    *wgpu.Buffer
}

// checkAliasing returns an error wrapping ErrAliased that names the first
// output sharing a buffer with a later output or with an input. Missing
// (nil) buffers are checkBuffer's to report.
func checkAliasing(outputs, inputs []namedBuffer) error {
	for i, o := range outputs {
		if o.b == nil {
			continue
		}
		for _, x := range append(outputs[i+1:len(outputs):len(outputs)], inputs...) {
			if x.b == o.b {
				return fmt.Errorf("%w: tensors %s and %s share a buffer; outputs need buffers of their own", ErrAliased, o.name, x.name)
			}
		}
	}
	return nil
}
