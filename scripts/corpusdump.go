//go:build ignore

// corpusdump loads a corpus the way the trainer does (package corpus) and
// writes what Python tools need from it:
//
//	go run scripts/corpusdump.go -stats                          # counts, skips, length quantiles
//	go run scripts/corpusdump.go -val /tmp/val.txt               # validation documents, concatenated (xz_bpb.py)
//	go run scripts/corpusdump.go -tokens 16384 -steps 200 -seed 1 -batches /tmp/batches.bin
//
// The batches are exactly those a trainer with the same data flags, tokens
// per step and seed packs from step 1 (corpus.NewPacker at its zero
// Position), so scripts/twin.py trains on the same token order.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"

	"github.com/coreattn/coreattn/corpus"
)

func main() {
	data := flag.String("data", "", "directory of text files or JSONL file (default: the Go distribution's .go files)")
	valPct := flag.Int("val-percent", corpus.DefaultValPercent, "percent of documents, by path hash, held out for validation")
	maxDoc := flag.Int("max-doc", 0, "cut documents longer than this many bytes into independent pieces (0: never)")
	tokens := flag.Int("tokens", 16384, "tokens per step (T)")
	steps := flag.Int("steps", 0, "steps of batches to write with -batches")
	seed := flag.Uint64("seed", 1, "packer seed (epoch e is shuffled with seed+e)")
	batches := flag.String("batches", "", "write -steps training batches to this batches.bin")
	val := flag.String("val", "", "write the validation documents, concatenated in path order, to this file")
	stats := flag.Bool("stats", false, "print corpus statistics")
	flag.Parse()
	if flag.NArg() > 0 {
		fail(fmt.Errorf("unexpected argument %q", flag.Arg(0)))
	}
	if *batches != "" && *steps <= 0 {
		fail(fmt.Errorf("-batches needs -steps > 0, got %d", *steps))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	c, err := corpus.Load(ctx, *data, corpus.Options{ValPercent: *valPct, MaxDoc: *maxDoc})
	if err != nil {
		fail(err)
	}
	if *stats || (*batches == "" && *val == "") {
		fmt.Println(c.Stats)
		fmt.Println("train:", corpus.Lengths(c.Train))
		fmt.Println("validation:", corpus.Lengths(c.Val))
		fmt.Printf("identity: %+v\n", c.Identity)
		for i, s := range c.Stats.Skips {
			if i == 10 {
				fmt.Printf("... and %d more skipped\n", len(c.Stats.Skips)-10)
				break
			}
			if s.Err != nil {
				fmt.Printf("skipped %s: %s: %v\n", s.Path, s.Reason, s.Err)
			} else {
				fmt.Printf("skipped %s: %s\n", s.Path, s.Reason)
			}
		}
	}
	if *val != "" {
		err := writeFile(*val, func(w io.Writer) error {
			for _, d := range c.Val {
				if _, err := w.Write(d.Data); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			fail(err)
		}
		fmt.Fprintf(os.Stderr, "corpusdump: %s: %d validation documents, %d bytes\n", *val, c.Stats.Val.Docs, c.Stats.Val.Bytes)
	}
	if *batches != "" {
		p, err := corpus.NewPacker(c.Train, *tokens, *seed)
		if err != nil {
			fail(err)
		}
		err = writeFile(*batches, func(w io.Writer) error {
			bw := corpus.NewBatchWriter(w)
			for range *steps {
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := bw.Write(p.Next()); err != nil {
					return err
				}
			}
			return bw.Flush()
		})
		if err != nil {
			fail(err)
		}
		fmt.Fprintf(os.Stderr, "corpusdump: %s: %d steps of %d tokens, ending at %+v\n", *batches, *steps, *tokens, p.Position())
	}
}

// writeFile writes path through a temporary file, so an interrupted run
// leaves no partial file under the name.
func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return errors.Join(fmt.Errorf("writing %s", path), err)
	}
	return nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "corpusdump:", err)
	os.Exit(1)
}
