package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testConfig stands for the trainer's config.
type testConfig struct {
	Preset string         `json:"preset"`
	Step   int            `json:"step"`
	Data   map[string]int `json:"data"`
}

// state is a checkpoint whose tensors are derived from its step, so a
// reader can tell whether model, optimiser state and config belong together.
func state(step int) (testConfig, []Tensor, []Tensor) {
	model := randomTensors(uint64(step), "")
	moments := append(randomTensors(uint64(step)+1000, "m."), randomTensors(uint64(step)+2000, "v.")...)
	return testConfig{Preset: "tiny", Step: step, Data: map[string]int{"epoch": step / 3}}, model, moments
}

// readBack loads a checkpoint and returns its step, checking that the
// tensors are that step's.
func readBack(t *testing.T, dir string) int {
	t.Helper()
	var cfg testConfig
	require.NoError(t, ReadConfig(dir, &cfg))
	want, wantModel, wantOptim := state(cfg.Step)
	assert.Equal(t, want, cfg)
	model, err := ReadModel(dir, Specs(wantModel))
	require.NoError(t, err)
	sameBits(t, wantModel, model)
	optim, err := ReadOptim(dir, MomentSpecs(Specs(wantModel)))
	require.NoError(t, err)
	sameBits(t, wantOptim, optim)
	return cfg.Step
}

func TestSaveAndRead(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "ckpt")
	for step := 1; step <= 3; step++ {
		cfg, model, optim := state(step)
		require.NoError(t, Save(dir, cfg, model, optim))
		assert.Equal(t, step, readBack(t, dir))
	}
	entries, err := os.ReadDir(parent)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary or old directory is left")
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), fi.Mode().Perm())
	files, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, f := range files {
		names = append(names, f.Name())
		fi, err := f.Info()
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
	}
	assert.Equal(t, []string{ConfigFile, ModelFile, OptimFile}, names)

	// Without optimiser state the file is absent and ReadOptim says so.
	cfg, model, _ := state(4)
	require.NoError(t, Save(dir, cfg, model, nil))
	_, err = ReadOptim(dir, nil)
	require.ErrorIs(t, err, ErrNoOptim)
	assert.NoFileExists(t, filepath.Join(dir, OptimFile))
	got, err := ReadModel(dir, Specs(model))
	require.NoError(t, err)
	sameBits(t, model, got)

	_, err = ReadModel(filepath.Join(parent, "none"), nil)
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestSaveRefuses(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "ckpt")
	cfg, model, optim := state(1)
	require.NoError(t, Save(dir, cfg, model, optim))

	_, bad, _ := state(2)
	bad[3].Data = bad[3].Data[:5]
	err := Save(dir, cfg, bad, optim)
	require.ErrorIs(t, err, ErrBadTensor)
	assert.Contains(t, err.Error(), bad[3].Name)
	require.ErrorIs(t, Save(dir, map[string]any{"f": func() {}}, model, optim), ErrConfig)
	dup := append(optim, optim[0])
	require.ErrorIs(t, Save(dir, cfg, model, dup), ErrBadTensor)
	assert.Equal(t, 1, readBack(t, dir), "a rejected save changes nothing")

	other := filepath.Join(parent, "run")
	require.NoError(t, os.MkdirAll(other, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(other, "train.jsonl"), []byte("{}\n"), 0o644))
	err = Save(other, cfg, model, optim)
	require.ErrorIs(t, err, ErrNotCheckpoint)
	assert.FileExists(t, filepath.Join(other, "train.jsonl"))

	file := filepath.Join(parent, "file")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o644))
	require.ErrorIs(t, Save(file, cfg, model, optim), ErrNotCheckpoint)

	empty := filepath.Join(parent, "empty")
	require.NoError(t, os.Mkdir(empty, 0o755))
	require.NoError(t, Save(empty, cfg, model, optim), "an empty directory is replaced")
	assert.Equal(t, 1, readBack(t, empty))
}

func TestReadErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ckpt")
	cfg, model, optim := state(1)
	require.NoError(t, Save(dir, cfg, model, optim))

	_, err := ReadModel(dir, Specs(model[:len(model)-1]))
	require.ErrorIs(t, err, ErrUnexpected)
	wrong := Specs(model)
	wrong[2].Shape = []int{16, 8}
	_, err = ReadModel(dir, wrong)
	require.ErrorIs(t, err, ErrShape)
	assert.Contains(t, err.Error(), filepath.Join(dir, ModelFile))

	require.NoError(t, os.WriteFile(filepath.Join(dir, ConfigFile), []byte(`{"preset": "tiny", "step": `), 0o644))
	var c testConfig
	err = ReadConfig(dir, &c)
	require.ErrorIs(t, err, ErrConfig)
	assert.NotContains(t, err.Error(), "\n")

	data, err := os.ReadFile(filepath.Join(dir, OptimFile))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, OptimFile), data[:len(data)/2], 0o644))
	_, err = ReadOptim(dir, MomentSpecs(Specs(model)))
	require.ErrorIs(t, err, ErrTruncated)
}

// crashOps stops a save at its n-th operation: by panicking, as a crash
// would (nothing after it runs), or by failing.
type crashOps struct {
	n, calls int
	panics   bool
}

type crash struct{}

var errInjected = errors.New("injected failure")

func (c *crashOps) step() error {
	c.calls++
	if c.calls == c.n {
		if c.panics {
			panic(crash{})
		}
		return errInjected
	}
	return nil
}

func (c *crashOps) rename(a, b string) error {
	if err := c.step(); err != nil {
		return err
	}
	return os.Rename(a, b)
}

func (c *crashOps) sync(f *os.File) error {
	if err := c.step(); err != nil {
		return err
	}
	return f.Sync()
}

func (c *crashOps) syncDir(dir string) error {
	if err := c.step(); err != nil {
		return err
	}
	return syncDir(dir)
}

// TestSaveSurvivesCrashes stops a save over an existing checkpoint at every
// step and checks that a complete checkpoint, the old or the new, is always
// there, and that the next save cleans up.
func TestSaveSurvivesCrashes(t *testing.T) {
	for _, panics := range []bool{true, false} {
		for n := 1; ; n++ {
			parent := t.TempDir()
			dir := filepath.Join(parent, "ckpt")
			cfg, model, optim := state(1)
			require.NoError(t, Save(dir, cfg, model, optim))

			cfg, model, optim = state(2)
			ops := &crashOps{n: n, panics: panics}
			var err error
			crashed := func() (crashed bool) {
				defer func() {
					if r := recover(); r != nil {
						_, crashed = r.(crash)
						require.True(t, crashed, "unexpected panic %v", r)
					}
				}()
				err = save(ops, dir, cfg, model, optim)
				return false
			}()
			done := !crashed && err == nil
			if !panics && !done {
				require.ErrorIs(t, err, errInjected, "step %d", n)
			}
			step := readBack(t, dir)
			if done {
				assert.Equal(t, 2, step)
				assert.Less(t, ops.calls, n, "the save finished before step %d", n)
			} else {
				assert.Contains(t, []int{1, 2}, step, "step %d", n)
			}

			// The next save succeeds and leaves only the checkpoint.
			cfg, model, optim = state(3)
			require.NoError(t, Save(dir, cfg, model, optim), "after stopping at step %d", n)
			assert.Equal(t, 3, readBack(t, dir))
			entries, err := os.ReadDir(parent)
			require.NoError(t, err)
			assert.Len(t, entries, 1, "after stopping at step %d", n)
			if done {
				require.Greater(t, n, 4, "a save has several steps to stop at")
				break
			}
		}
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "weights.safetensors")
	for seed := uint64(1); seed <= 2; seed++ {
		ts := randomTensors(seed, "p.")
		require.NoError(t, WriteFile(path, ts))
		got, err := ReadFile(path, Specs(ts))
		require.NoError(t, err)
		sameBits(t, ts, got)
	}
	require.ErrorIs(t, WriteFile(path, []Tensor{{"a", []int{3}, nil}}), ErrBadTensor)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file is left")
}
