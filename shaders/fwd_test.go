package shaders

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFwdVFold pins how V chunks longer than the d-chunks are staged: as
// many V rows to a stage row as the Q/K chunk's width holds and VC/KC
// calls for, so the buffers keep KC rows; one row each otherwise.
func TestFwdVFold(t *testing.T) {
	cases := []struct {
		t                 FwdTiling
		fold, rows, width int
		bytes             int
	}{
		{FwdTiling{D: 64, TX: 16, TY: 24, KC: 16, VC: 32}, 2, 16, 40, 45056},  // Br 96: 40 vec4s hold two rows of 16
		{FwdTiling{D: 64, TX: 16, TY: 24, KC: 16, VC: 16}, 1, 16, 40, 45056},  // the b19 D 64 choice
		{FwdTiling{D: 128, TX: 16, TY: 16, KC: 32, VC: 32}, 1, 32, 32, 49152}, // the D 128 choice
		{FwdTiling{D: 128, TX: 16, TY: 16, KC: 16, VC: 32}, 1, 32, 32, 49152}, // 32 vec4s hold one row of 32
		{FwdTiling{D: 32, TX: 16, TY: 16, KC: 8, VC: 64}, 4, 16, 32, 32768},   // four rows of 8 side by side
	}
	for _, c := range cases {
		require.Equal(t, [3]int{c.fold, c.rows, c.width}, [3]int{c.t.vFold(), c.t.stageRows(), c.t.stageWidth()}, "%s", c.t)
		require.Equal(t, c.bytes, c.t.WorkgroupBytes(), "%s", c.t)
		src, err := c.t.Source()
		require.NoError(t, err)
		require.Contains(t, src, fmt.Sprintf("const V_FOLDED: u32 = %du;", boolInt(c.fold > 1)), "%s", c.t)
		require.Equal(t, c.fold > 1, strings.Contains(src, "stage[sb][c % STAGE_ROWS]"), "%s: the folded V read", c.t)
	}
}
